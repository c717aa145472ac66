//! Micro-benchmarks of the node's hot path, each stage on its own and without threads or
//! networking: RTP depacketization, keeping access units while nobody watches (the catch-up
//! buffer), 1080p H.264 decoding and I420 → bgr8 conversion. Together
//! with `ros_message` they are the floor the end-to-end CPU per frame is compared against
//! (`scripts/bench` reads their results from `target/criterion`).
//!
//! The input is one second (30 frames, an IDR first) of the simulator's own scene, encoded by
//! the simulator's encoder at 2 and 8 Mbit/s, so the bitstream is the one the end-to-end
//! benchmark streams.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use openh264::decoder::DecodedYUV;
use openh264::formats::YUVSource as _;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader as _;
use spot_ptz_stream::media::buffer_pool::BufferPool;
use spot_ptz_stream::media::catch_up::{self, CatchUp};
use spot_ptz_stream::media::convert::{self, ColorSpec, I420Planes};
use spot_ptz_stream::media::decoder;
use spot_ptz_stream::media::depacketizer::{AccessUnit, Depacketizer, RtpInfo};
use spot_ptz_stream::media::openh264_decoder::Openh264Decoder;
use spot_ptz_stream::sim::camera::{self, EncodedFrame};
use spot_ptz_stream::sim::state::StreamSettings;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FPS: u32 = 30;
/// One second of video per iteration.
const FRAMES: u32 = 30;
/// The payload size webrtc-rs packetizes to.
const MTU: usize = 1200;
const BITRATES_BPS: [i64; 2] = [2_000_000, 8_000_000];

fn clip(bitrate_bps: i64) -> Vec<EncodedFrame> {
    let settings = StreamSettings {
        target_bitrate_bps: bitrate_bps,
        refresh_interval_frames: 0,
        idr_interval_frames: 30,
        awb_mode: 0,
    };
    camera::encode_clip(WIDTH, HEIGHT, FPS, &settings, FRAMES).expect("encoding the clip")
}

/// The clip as the RTP packets the camera sends (payload, header fields).
fn packetize(clip: &[EncodedFrame]) -> Vec<(RtpInfo, Bytes)> {
    let mut payloader = H264Payloader::default();
    let mut packets = Vec::new();
    let mut sequence_number: u16 = 0;
    for frame in clip {
        let payloads = payloader.payload(MTU, &frame.data).expect("packetizing");
        let last = payloads.len().saturating_sub(1);
        for (i, payload) in payloads.into_iter().enumerate() {
            packets.push((
                RtpInfo {
                    sequence_number,
                    timestamp: frame.rtp_timestamp,
                    marker: i == last,
                },
                payload,
            ));
            sequence_number = sequence_number.wrapping_add(1);
        }
    }
    packets
}

fn depacketize(c: &mut Criterion) {
    let mut group = c.benchmark_group("depacketize_1080p");
    group.throughput(Throughput::Elements(u64::from(FRAMES)));
    for bitrate_bps in BITRATES_BPS {
        let packets = packetize(&clip(bitrate_bps));
        let now = Instant::now();
        group.bench_function(format!("{}mbps_30_frames", bitrate_bps / 1_000_000), |b| {
            b.iter(|| {
                let mut depacketizer = Depacketizer::new(Duration::from_secs(2));
                let mut frames = 0;
                for (rtp, payload) in &packets {
                    if let Some(au) = depacketizer.push(*rtp, payload, now) {
                        frames += 1;
                        black_box(au);
                    }
                }
                assert_eq!(frames, FRAMES);
            });
        });
    }
    group.finish();
}

/// What an access unit costs while nobody watches: kept for a new consumer's first picture
/// (its NAL headers scanned, moved into the queue, older waves let go), not decoded.
fn keep_unwatched(c: &mut Criterion) {
    let mut group = c.benchmark_group("keep_unwatched_1080p");
    group.throughput(Throughput::Elements(u64::from(FRAMES)));
    for bitrate_bps in BITRATES_BPS {
        let now = Instant::now();
        let units: Vec<AccessUnit> = clip(bitrate_bps)
            .iter()
            .map(|frame| AccessUnit {
                data: frame.data.to_vec(),
                rtp_timestamp: frame.rtp_timestamp,
                first_arrival: now,
                is_idr: frame.is_idr,
                after_gap: false,
            })
            .collect();
        group.bench_function(format!("{}mbps_30_frames", bitrate_bps / 1_000_000), |b| {
            b.iter_batched(
                || (CatchUp::new(catch_up::DEFAULT_MAX_BYTES), units.clone()),
                |(mut kept, units)| {
                    for unit in units {
                        black_box(kept.keep(unit, false));
                    }
                    kept
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_1080p");
    group.throughput(Throughput::Elements(u64::from(FRAMES)));
    group.sample_size(20);
    for bitrate_bps in BITRATES_BPS {
        let clip = clip(bitrate_bps);
        group.bench_function(format!("{}mbps_30_frames", bitrate_bps / 1_000_000), |b| {
            b.iter_batched(
                || Openh264Decoder::new().expect("decoder"),
                |mut h264| {
                    let mut pictures = 0;
                    for frame in &clip {
                        let decoded = h264.decode(&frame.data, |yuv| black_box(yuv.dimensions()));
                        if decoded.expect("decoding").is_some() {
                            pictures += 1;
                        }
                    }
                    assert_eq!(pictures, FRAMES);
                    h264
                },
                BatchSize::PerIteration,
            );
        });
        // The default decoder, with its loss guard (one slice-header read per access unit).
        #[cfg(feature = "libavcodec")]
        group.bench_function(
            format!("libavcodec_{}mbps_30_frames", bitrate_bps / 1_000_000),
            |b| {
                use spot_ptz_stream::media::libavcodec::{Decoded, LibavcodecDecoder};
                b.iter_batched(
                    || LibavcodecDecoder::new().expect("libavcodec"),
                    |mut h264| {
                        let mut pictures = 0;
                        for frame in &clip {
                            if let Decoded::Picture(planes) =
                                h264.decode(&frame.data).expect("decoding")
                            {
                                pictures += 1;
                                black_box(planes.width);
                            }
                        }
                        assert_eq!(pictures, FRAMES);
                        h264
                    },
                    BatchSize::PerIteration,
                );
            },
        );
    }
    group.finish();
}

/// Owned copies of a decoded picture's planes.
struct Picture {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    strides: (u32, u32, u32),
}

impl Picture {
    fn from_decoded(yuv: &DecodedYUV<'_>) -> Self {
        let planes = decoder::planes_of(yuv).expect("plane sizes");
        Self {
            y: planes.y.to_vec(),
            u: planes.u.to_vec(),
            v: planes.v.to_vec(),
            strides: (planes.y_stride, planes.u_stride, planes.v_stride),
        }
    }

    fn planes(&self) -> I420Planes<'_> {
        I420Planes {
            y: &self.y,
            u: &self.u,
            v: &self.v,
            y_stride: self.strides.0,
            u_stride: self.strides.1,
            v_stride: self.strides.2,
            width: WIDTH,
            height: HEIGHT,
        }
    }
}

fn convert(c: &mut Criterion) {
    let clip = clip(BITRATES_BPS[0]);
    let mut h264 = Openh264Decoder::new().expect("decoder");
    let picture = h264
        .decode(&clip[0].data, Picture::from_decoded)
        .expect("decoding")
        .expect("a picture from the IDR");
    let planes = picture.planes();
    let color = ColorSpec::default();

    let mut group = c.benchmark_group("i420_to_bgr8_1080p");
    group.throughput(Throughput::Elements(1));
    // What the decoder thread does: the buffer comes back from the publisher through the pool.
    let pool = BufferPool::new(2);
    group.bench_function("pooled_buffer", |b| {
        b.iter(|| {
            let mut bgr = pool.take(planes.bgr8_len());
            convert::i420_to_bgr8(&planes, color, &mut bgr).expect("conversion");
            pool.give_back(black_box(bgr));
        });
    });
    // For comparison: a new 6 MB buffer per frame (what the node did before the pool).
    group.bench_function("new_buffer", |b| {
        b.iter(|| {
            let mut bgr = vec![0u8; planes.bgr8_len()];
            convert::i420_to_bgr8(&planes, color, &mut bgr).expect("conversion");
            black_box(bgr);
        });
    });
    group.finish();
}

criterion_group!(benches, depacketize, keep_unwatched, decode, convert);
criterion_main!(benches);
