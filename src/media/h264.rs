//! H.264 bitstream syntax (ITU-T H.264 §7.3) as far as the media path reads it: NAL units of
//! an Annex-B buffer, RBSP unescaping, Exp-Golomb reading, the SPS fields of [`SpsInfo`], the
//! ids of a PPS and the start of a slice header (for `frame_num`). Everything here reads the
//! camera's bytes: every read is bounds-checked and malformed input is an error, never a panic.

/// Malformed or truncated H.264 syntax; the text says which field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed H.264 syntax: {0}")]
pub struct H264SyntaxError(pub &'static str);

/// The fields of an SPS the media path needs: the picture size (after cropping) and the avcC
/// profile fields for the MP4 sample description, and what slice headers need to be read
/// (`frame_num`, for the decoder's loss guard).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub width: u32,
    pub height: u32,
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub seq_parameter_set_id: u32,
    pub separate_colour_plane: bool,
    /// `log2_max_frame_num_minus4 + 4`: the bits of `frame_num` in a slice header.
    pub log2_max_frame_num: u32,
    pub gaps_in_frame_num_allowed: bool,
}

/// Parses the fields of an SPS NAL unit (with its one-byte header) the container needs.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264SyntaxError> {
    let rbsp = unescape_rbsp(nal.get(1..).unwrap_or_default());
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let seq_parameter_set_id = r.ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let log2_max_frame_num = r.ue()?.saturating_add(4);
    if log2_max_frame_num > 16 {
        return Err(H264SyntaxError("log2_max_frame_num_minus4 > 12"));
    }
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(H264SyntaxError(
                    "num_ref_frames_in_pic_order_cnt_cycle > 255",
                ));
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    let gaps_in_frame_num_allowed = r.bit()?;
    let width_mbs = r.ue()?.saturating_add(1);
    let height_map_units = r.ue()?.saturating_add(1);
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0, 0, 0, 0);
    if r.bit()? {
        crop_left = r.ue()?;
        crop_right = r.ue()?;
        crop_top = r.ue()?;
        crop_bottom = r.ue()?;
    }
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_width, sub_height) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (crop_unit_x, crop_unit_y) = if chroma_array_type == 0 {
        (1, field_factor)
    } else {
        (sub_width, sub_height * field_factor)
    };
    let full_width = u64::from(width_mbs) * 16;
    let full_height = u64::from(height_map_units) * 16 * field_factor;
    let crop_x = (u64::from(crop_left) + u64::from(crop_right)) * crop_unit_x;
    let crop_y = (u64::from(crop_top) + u64::from(crop_bottom)) * crop_unit_y;
    let width = full_width
        .checked_sub(crop_x)
        .and_then(|w| u32::try_from(w).ok())
        .filter(|w| (1..=u32::from(u16::MAX)).contains(w))
        .ok_or(H264SyntaxError("width out of range"))?;
    let height = full_height
        .checked_sub(crop_y)
        .and_then(|h| u32::try_from(h).ok())
        .filter(|h| (1..=u32::from(u16::MAX)).contains(h))
        .ok_or(H264SyntaxError("height out of range"))?;
    Ok(SpsInfo {
        width,
        height,
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        separate_colour_plane,
        log2_max_frame_num,
        gaps_in_frame_num_allowed,
    })
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264SyntaxError> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`).
pub fn unescape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &byte in data {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

struct BitReader<'a> {
    data: &'a [u8],
    pos_bits: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos_bits: 0 }
    }

    fn bit(&mut self) -> Result<bool, H264SyntaxError> {
        let byte = self
            .data
            .get(self.pos_bits / 8)
            .ok_or(H264SyntaxError("truncated"))?;
        let bit = (byte >> (7 - self.pos_bits % 8)) & 1;
        self.pos_bits += 1;
        Ok(bit == 1)
    }

    fn bits(&mut self, count: u32) -> Result<u32, H264SyntaxError> {
        let mut value = 0u32;
        for _ in 0..count.min(32) {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Ok(value)
    }

    /// Unsigned Exp-Golomb.
    fn ue(&mut self) -> Result<u32, H264SyntaxError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(H264SyntaxError("Exp-Golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed Exp-Golomb.
    fn se(&mut self) -> Result<i64, H264SyntaxError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// The NAL units of an Annex-B buffer, without start codes and trailing zero bytes.
pub fn annex_b_nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        loop {
            let start = find_start_code(rest)?;
            rest = rest.get(start + 3..)?;
            let end = find_start_code(rest).unwrap_or(rest.len());
            let (nal, tail) = rest.split_at(end);
            rest = tail;
            let trimmed_len = nal.len() - nal.iter().rev().take_while(|&&b| b == 0).count();
            if trimmed_len > 0 {
                return Some(&nal[..trimmed_len]);
            }
        }
    })
}

/// `payloadType` of a recovery-point SEI message (H.264 D.1.8): the picture where a decoder
/// that starts here has a whole picture again (periodic intra refresh).
const SEI_RECOVERY_POINT: u32 = 6;

/// Whether an SEI NAL unit (with its one-byte header) carries a recovery-point message.
/// Malformed or truncated messages answer `false`.
pub fn sei_has_recovery_point(nal: &[u8]) -> bool {
    let rbsp = unescape_rbsp(nal.get(1..).unwrap_or_default());
    let mut rest = rbsp.as_slice();
    // sei_message(): payloadType and payloadSize, each as a run of 0xFF bytes plus a last byte.
    let read_value = |rest: &mut &[u8]| -> Option<u32> {
        let mut value = 0u32;
        loop {
            let (&byte, tail) = rest.split_first()?;
            *rest = tail;
            value = value.checked_add(u32::from(byte))?;
            if byte != 0xFF {
                return Some(value);
            }
        }
    };
    // Stop at rbsp_trailing_bits (0x80) or when the data runs out.
    while rest.first().is_some_and(|&b| b != 0x80) {
        let Some(payload_type) = read_value(&mut rest) else {
            return false;
        };
        let Some(payload_size) = read_value(&mut rest) else {
            return false;
        };
        if payload_type == SEI_RECOVERY_POINT {
            return true;
        }
        match rest.get(payload_size as usize..) {
            Some(tail) => rest = tail,
            None => return false,
        }
    }
    false
}

/// Offset of the next `00 00 01`.
fn find_start_code(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0, 0, 1])
}

/// `nal_unit_type` of a NAL unit (its first byte).
pub fn nal_kind(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| h & 0x1F)
}

/// `nal_ref_idc` of a NAL unit (bits 5–6 of its first byte): 0 = nothing predicts from it.
pub fn nal_ref_idc(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| (h >> 5) & 0x3)
}

/// `(pic_parameter_set_id, seq_parameter_set_id)` of a PPS NAL unit (with its header byte).
pub fn parse_pps_ids(nal: &[u8]) -> Result<(u32, u32), H264SyntaxError> {
    let rbsp = unescape_rbsp(nal.get(1..).unwrap_or_default());
    let mut r = BitReader::new(&rbsp);
    Ok((r.ue()?, r.ue()?))
}

/// A slice that refers to a PPS not seen (yet): not malformed, only not readable now.
pub const UNKNOWN_PPS: H264SyntaxError = H264SyntaxError("the slice's PPS has not been seen");

/// The start of a slice header (§7.3.3), up to `frame_num`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceStart {
    pub is_idr: bool,
    pub nal_ref_idc: u8,
    pub first_mb_in_slice: u32,
    pub pic_parameter_set_id: u32,
    pub frame_num: u32,
}

/// Reads the start of a slice NAL unit (with its header byte). `sps_for_pps` gives the SPS a
/// PPS id refers to (`None`: not seen yet, and the slice cannot be read).
pub fn parse_slice_start(
    nal: &[u8],
    sps_for_pps: impl Fn(u32) -> Option<SpsInfo>,
) -> Result<SliceStart, H264SyntaxError> {
    // The fields read here fit in the first bytes; do not unescape a whole slice.
    let head = nal.get(1..nal.len().min(32)).unwrap_or_default();
    let rbsp = unescape_rbsp(head);
    let mut r = BitReader::new(&rbsp);
    let first_mb_in_slice = r.ue()?;
    let _slice_type = r.ue()?;
    let pic_parameter_set_id = r.ue()?;
    let sps = sps_for_pps(pic_parameter_set_id).ok_or(UNKNOWN_PPS)?;
    if sps.separate_colour_plane {
        r.bits(2)?; // colour_plane_id
    }
    let frame_num = r.bits(sps.log2_max_frame_num)?;
    Ok(SliceStart {
        is_idr: nal_kind(nal) == 5,
        nal_ref_idc: nal_ref_idc(nal),
        first_mb_in_slice,
        pic_parameter_set_id,
        frame_num,
    })
}
