"""What spot_cam_sim drew for a frame number, and how far a received bgr8 picture is from it.

A numpy port of the luma part of src/sim/scene.rs (fn render) and src/sim/frame_tag.rs
(draw_luma), at the PTZ's home pose (pan 0, tilt 0, zoom 1), with the simulator's scene time
`frame_number as f32 / fps as f32` (src/sim/camera.rs). The comparison is the one of the Rust
integration tests (tests/common/mod.rs, luma_error): limited-range BT.601 luma of the picture,
the absolute difference from the drawing rounded per pixel, its mean per 16x16 block; a picture
whose worst block exceeds DAMAGED_WORST_BLOCK is damaged (a clean one measures under 6).

Pure numpy (no ROS), so that `python3 bench/sim_scene.py` checks the port by itself.
"""
import numpy as np

# src/sim/scene.rs
PX_PER_DEG = 24.0  # only the home pose is ported: pan and tilt are 0, so it does not enter
TILE_SHIFT = 6
CROSSING_SECS = np.float32(4.0)
BLOCK_LUMA = 225
# src/sim/frame_tag.rs
TAG_BLOCKS = 32
LUMA_BLACK, LUMA_WHITE = 16, 235

ERROR_BLOCK = 16
DAMAGED_WORST_BLOCK = 12.0


def tag_block_px(width):
    """Side of one tag block: a multiple of 8, between 8 and 32 (frame_tag::block_px)."""
    return max(8, min(32, (width // 40) // 8 * 8))


def tag_bits(frame_number):
    """The 32 bits drawn for a frame number: 24 bits of number, then the check byte."""
    number = frame_number & 0xFFFFFF
    check = ((number >> 16) ^ (number >> 8) ^ number ^ 0xA5) & 0xFF
    return (number << 8) | check


class Scene:
    """The simulator's luma drawing for one picture size and frame rate."""

    def __init__(self, width, height, fps):
        # I420Frame::new rounds the size down to even numbers.
        self.width, self.height, self.fps = width & ~1, height & ~1, max(1, fps)
        w, h = self.width, self.height
        # Home pose: the 16.16 step is exactly one world pixel per screen pixel, the origin
        # half a picture up and left of the world's centre.
        world_x = np.arange(w, dtype=np.int64) - w // 2
        world_y = np.arange(h, dtype=np.int64) - h // 2
        tile = ((world_x[None, :] >> TILE_SHIFT) & 1) ^ ((world_y[:, None] >> TILE_SHIFT) & 1)
        shade = (world_x[None, :] + (world_y[:, None] & 31)) & 63
        self.background = (48 + tile * 96 + shade).astype(np.uint8)
        self.block_side = max(h // 5, 8)
        self.block_y = h // 2 - self.block_side // 2
        self.tag_side = tag_block_px(w)
        self.tag_rows = min(self.tag_side, h)
        self.tag_width = min(self.tag_side * TAG_BLOCKS, w)
        # Block index (0 = most significant bit) of each tag column.
        self.tag_block_of_x = np.arange(self.tag_width) // self.tag_side

    def block_x(self, frame_number):
        """Left edge of the moving block, in f32 like the simulator (may be negative)."""
        elapsed = np.float32(frame_number) / np.float32(self.fps)
        crossed = elapsed / CROSSING_SECS
        travel = np.float32(self.width + self.block_side)
        return int((crossed - np.trunc(crossed)) * travel) - self.block_side

    def tag_row(self, frame_number):
        bits = tag_bits(frame_number)
        on = (bits >> (31 - self.tag_block_of_x)) & 1
        return np.where(on == 1, LUMA_WHITE, LUMA_BLACK).astype(np.uint8)

    def render_luma(self, frame_number):
        """The Y plane the simulator drew for this frame (height x width, uint8)."""
        luma = self.background.copy()
        x0 = self.block_x(frame_number)
        x1 = min(self.width, x0 + self.block_side)
        if x1 > 0:
            luma[self.block_y:self.block_y + self.block_side, max(0, x0):x1] = BLOCK_LUMA
        luma[:self.tag_rows, :self.tag_width] = self.tag_row(frame_number)
        return luma


class PixelCheck:
    """Worst 16x16-block luma error of received bgr8 pictures against the drawing.

    Vectorised and allocation-light: the static background's contribution is computed per
    picture in one pass, and only the moving block's rows and the tag are redrawn.
    """

    @classmethod
    def from_spec(cls, spec):
        """From "WxH@FPS", as the test scripts' --check-pixels takes it."""
        size, fps = spec.split("@")
        width, height = (int(v) for v in size.split("x"))
        return cls(width, height, int(fps))

    def __init__(self, width, height, fps):
        self.scene = Scene(width, height, fps)
        w, h = self.scene.width, self.scene.height
        self.rows_padded = -(-h // ERROR_BLOCK) * ERROR_BLOCK
        self.cols_padded = -(-w // ERROR_BLOCK) * ERROR_BLOCK
        self.error = np.zeros((self.rows_padded, self.cols_padded), np.float32)
        counts = np.zeros((self.rows_padded, self.cols_padded), np.float32)
        counts[:h, :w] = 1
        self.block_counts = self._block_sums(counts)
        # BT.601 limited range, per channel in B, G, R order, scaled to luma steps.
        self.weights = np.array([24.966, 128.553, 65.481], np.float32) / np.float32(255.0)

    def _block_sums(self, a):
        return a.reshape(self.rows_padded // ERROR_BLOCK, ERROR_BLOCK,
                         self.cols_padded // ERROR_BLOCK, ERROR_BLOCK).sum(axis=(1, 3))

    def luma_of_bgr8(self, data, step):
        """Limited-range BT.601 luma (float32) of a packed bgr8 picture."""
        w, h = self.scene.width, self.scene.height
        bgr = np.frombuffer(data, np.uint8, count=step * h).reshape(h, step)[:, :w * 3]
        bgr = bgr.reshape(h, w, 3)
        luma = bgr[:, :, 0] * self.weights[0]
        luma += bgr[:, :, 1] * self.weights[1]
        luma += bgr[:, :, 2] * self.weights[2]
        luma += np.float32(16.0)
        return luma

    def worst_block(self, data, step, frame_number, luma=None):
        """The worst block's mean absolute luma error against the drawing of `frame_number`."""
        scene = self.scene
        w, h = scene.width, scene.height
        if luma is None:
            luma = self.luma_of_bgr8(data, step)
        error = self.error[:h, :w]
        # |Y - drawing|, rounded half up like f64::round of a non-negative value.
        np.subtract(luma, scene.background, out=error)
        y0, y1 = scene.block_y, scene.block_y + scene.block_side
        x0 = scene.block_x(frame_number)
        x1 = min(w, x0 + scene.block_side)
        if x1 > 0:
            np.subtract(luma[y0:y1, max(0, x0):x1], np.float32(BLOCK_LUMA),
                        out=error[y0:y1, max(0, x0):x1])
        rows, cols = scene.tag_rows, scene.tag_width
        np.subtract(luma[:rows, :cols], scene.tag_row(frame_number), out=error[:rows, :cols])
        np.abs(error, out=error)
        error += np.float32(0.5)
        np.floor(error, out=error)
        return float((self._block_sums(self.error) / self.block_counts).max())

    def to_bgr8(self, luma):
        """A grey bgr8 picture with this luma (for the self-check): R = G = B."""
        grey = np.clip(np.rint((luma.astype(np.float64) - 16.0) * 255.0 / 219.0), 0, 255)
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2).tobytes()


def self_check():
    """The port against itself and the tag reader; see bench/run_bench.py --link-loss-percents
    for the check against real frames."""
    import time
    for width, height, fps in ((640, 360, 30), (1920, 1080, 30)):
        check = PixelCheck(width, height, fps)
        scene = check.scene
        for n in (0, 1, 59, 120, 12345):
            data = check.to_bgr8(scene.render_luma(n))
            same = check.worst_block(data, width * 3, n)
            other = check.worst_block(data, width * 3, n - 2) if n >= 2 else None
            assert same < 1.0, (width, n, same)
            assert other is None or other > 2 * DAMAGED_WORST_BLOCK, (width, n, other)
        data = check.to_bgr8(scene.render_luma(100))
        started = time.perf_counter()
        for _ in range(10):
            check.worst_block(data, width * 3, 100)
        print(f"{width}x{height}: {(time.perf_counter() - started) * 100:.1f} ms per picture")
    # The block enters from the left (x < 0 at the start of each crossing) and leaves right.
    scene = Scene(640, 360, 30)
    assert scene.block_x(0) == -scene.block_side
    assert scene.block_x(119) > 640 - scene.block_side
    print("sim_scene: self-check passed")


if __name__ == "__main__":
    self_check()
