//! Minimal H.264 Annex-B helpers: NAL iteration, access-unit splitting, RBSP/bit reading and the
//! few SPS/PPS/slice-header/SEI fields the decoder's loss guard and the tests need.
//!
//! Only what is needed to find frame_num gaps and recovery points is parsed; this is not a
//! general H.264 parser.

use std::collections::HashMap;

/// NAL unit types used here (ITU-T H.264 table 7-1).
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

/// SEI payload type of the recovery point message (H.264 D.1.8).
pub const SEI_RECOVERY_POINT: u32 = 6;

/// Yields `(offset_of_start_code, nal)` for every NAL unit of an Annex-B byte stream. `nal` is the
/// NAL unit without its start code (header byte first); trailing zero bytes before the next start
/// code are stripped.
pub fn nal_units_with_offsets(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut starts = Vec::new(); // (start code offset, payload offset)
    let mut i = 0usize;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &(sc, begin)) in starts.iter().enumerate() {
        let mut end = starts
            .get(k + 1)
            .map_or(data.len(), |&(next_sc, _)| next_sc);
        while end > begin && data[end - 1] == 0 {
            end -= 1;
        }
        if end > begin {
            out.push((sc, &data[begin..end]));
        }
    }
    out.into_iter()
}

/// NAL units of an Annex-B byte stream, without start codes.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    nal_units_with_offsets(data).map(|(_, nal)| nal)
}

/// `nal_unit_type` of a NAL unit (without start code).
pub fn nal_unit_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| h & 0x1f)
}

/// `nal_ref_idc` of a NAL unit (without start code).
pub fn nal_ref_idc(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| (h >> 5) & 0x3)
}

fn is_vcl(t: u8) -> bool {
    (1..=5).contains(&t)
}

/// Splits an Annex-B elementary stream into access units (each a slice of `data` that starts at
/// a start code). A new AU starts at an AUD, at SPS/PPS/SEI/types 14..=18 that follow a VCL NAL
/// of the current AU, or at a VCL NAL with `first_mb_in_slice == 0` when the current AU already
/// has a VCL NAL (H.264 7.4.1.2.3; good enough for streams without ASO/redundant pictures).
pub fn split_access_units(data: &[u8]) -> Vec<&[u8]> {
    let mut aus = Vec::new();
    let mut au_start: Option<usize> = None;
    let mut has_vcl = false;
    for (offset, nal) in nal_units_with_offsets(data) {
        let t = nal_unit_type(nal);
        let new_au = match t {
            nal_type::AUD => true,
            6..=8 | 14..=18 => has_vcl,
            _ if is_vcl(t) => has_vcl && first_mb_is_zero(nal),
            _ => false,
        };
        if new_au {
            if let Some(s) = au_start {
                aus.push(&data[s..offset]);
            }
            au_start = Some(offset);
            has_vcl = false;
        }
        if au_start.is_none() {
            au_start = Some(offset);
        }
        if is_vcl(t) {
            has_vcl = true;
        }
    }
    if let Some(s) = au_start {
        aus.push(&data[s..]);
    }
    aus
}

/// `first_mb_in_slice == 0` is coded as a single `1` bit right after the header byte.
fn first_mb_is_zero(nal: &[u8]) -> bool {
    nal.get(1).is_some_and(|b| b & 0x80 != 0)
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`) from a NAL unit payload.
pub fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first bit reader over an RBSP. Reads past the end return `None`.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let v = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(u32::from(v))
    }

    pub fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// Exp-Golomb unsigned.
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// Exp-Golomb signed.
    pub fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        let mag = k.div_ceil(2) as i32;
        Some(if k % 2 == 1 { mag } else { -mag })
    }
}

/// The SPS fields the loss guard needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    pub id: u32,
    pub profile_idc: u8,
    pub log2_max_frame_num: u32,
    pub separate_colour_plane: bool,
    pub gaps_in_frame_num_allowed: bool,
    pub width_mbs: u32,
    pub height_map_units: u32,
    pub frame_mbs_only: bool,
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Parses an SPS NAL unit (with header byte). `None` if it is truncated or not an SPS.
pub fn parse_sps(nal: &[u8]) -> Option<SpsInfo> {
    if nal_unit_type(nal) != nal_type::SPS {
        return None;
    }
    let data = rbsp(nal.get(1..)?);
    let mut r = BitReader::new(&data);
    let profile_idc = r.bits(8)? as u8;
    let _constraints = r.bits(8)?;
    let _level = r.bits(8)?;
    let id = r.ue()?;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()? == 1;
        }
        let _bit_depth_luma = r.ue()?;
        let _bit_depth_chroma = r.ue()?;
        let _qpprime_y_zero = r.bit()?;
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let log2_max_frame_num = r.ue()? + 4;
    let poc_type = r.ue()?;
    if poc_type == 0 {
        let _log2_max_poc_lsb = r.ue()?;
    } else if poc_type == 1 {
        let _delta_always_zero = r.bit()?;
        let _offset_non_ref = r.se()?;
        let _offset_top_bottom = r.se()?;
        let n = r.ue()?;
        for _ in 0..n {
            let _ = r.se()?;
        }
    }
    let _max_num_ref_frames = r.ue()?;
    let gaps_in_frame_num_allowed = r.bit()? == 1;
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()? == 1;
    Some(SpsInfo {
        id,
        profile_idc,
        log2_max_frame_num,
        separate_colour_plane,
        gaps_in_frame_num_allowed,
        width_mbs,
        height_map_units,
        frame_mbs_only,
    })
}

/// Parses `(pps_id, sps_id)` from a PPS NAL unit (with header byte).
pub fn parse_pps_ids(nal: &[u8]) -> Option<(u32, u32)> {
    if nal_unit_type(nal) != nal_type::PPS {
        return None;
    }
    let data = rbsp(nal.get(1..)?);
    let mut r = BitReader::new(&data);
    let pps_id = r.ue()?;
    let sps_id = r.ue()?;
    Some((pps_id, sps_id))
}

/// The start of a slice header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceInfo {
    pub idr: bool,
    pub nal_ref_idc: u8,
    pub first_mb: u32,
    pub slice_type: u32,
    pub pps_id: u32,
    pub frame_num: u32,
}

/// Keeps the parameter sets seen so far, enough to read `frame_num` from slice headers, and the
/// raw SPS/PPS NAL units (with a 4-byte start code) so they can be prepended after a reconnect.
#[derive(Debug, Default, Clone)]
pub struct ParamSets {
    sps: HashMap<u32, SpsInfo>,
    pps: HashMap<u32, u32>,
    raw_sps: HashMap<u32, Vec<u8>>,
    raw_pps: HashMap<u32, Vec<u8>>,
}

impl ParamSets {
    /// Records SPS/PPS NAL units; other NAL types are ignored.
    pub fn observe(&mut self, nal: &[u8]) {
        match nal_unit_type(nal) {
            nal_type::SPS => {
                if let Some(s) = parse_sps(nal) {
                    self.sps.insert(s.id, s);
                    self.raw_sps.insert(s.id, with_start_code(nal));
                }
            }
            nal_type::PPS => {
                if let Some((p, s)) = parse_pps_ids(nal) {
                    self.pps.insert(p, s);
                    self.raw_pps.insert(p, with_start_code(nal));
                }
            }
            _ => {}
        }
    }

    /// The SPS that a slice with this PPS id refers to.
    pub fn sps_for_pps(&self, pps_id: u32) -> Option<&SpsInfo> {
        self.pps
            .get(&pps_id)
            .and_then(|sps_id| self.sps.get(sps_id))
    }

    /// All cached SPS then PPS NAL units, Annex-B, to prepend to the first AU after a join.
    pub fn annex_b_headers(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ids: Vec<_> = self.raw_sps.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            out.extend_from_slice(&self.raw_sps[&id]);
        }
        let mut ids: Vec<_> = self.raw_pps.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            out.extend_from_slice(&self.raw_pps[&id]);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.sps.is_empty() || self.pps.is_empty()
    }

    /// Parses the start of a slice header (NAL with header byte). `None` if it is not a slice,
    /// is truncated, or refers to a PPS/SPS not seen yet.
    pub fn parse_slice(&self, nal: &[u8]) -> Option<SliceInfo> {
        let t = nal_unit_type(nal);
        if t != nal_type::SLICE && t != nal_type::IDR {
            return None;
        }
        // 8 bytes of RBSP are plenty for the fields read here.
        let data = rbsp(nal.get(1..nal.len().min(24))?);
        let mut r = BitReader::new(&data);
        let first_mb = r.ue()?;
        let slice_type = r.ue()?;
        let pps_id = r.ue()?;
        let sps = self.sps_for_pps(pps_id)?;
        if sps.separate_colour_plane {
            let _colour_plane_id = r.bits(2)?;
        }
        let frame_num = r.bits(sps.log2_max_frame_num)?;
        Some(SliceInfo {
            idr: t == nal_type::IDR,
            nal_ref_idc: nal_ref_idc(nal),
            first_mb,
            slice_type,
            pps_id,
            frame_num,
        })
    }
}

fn with_start_code(nal: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(nal.len() + 4);
    v.extend_from_slice(&[0, 0, 0, 1]);
    v.extend_from_slice(nal);
    v
}

/// Payload types of all SEI messages in an SEI NAL unit (with header byte).
pub fn sei_payload_types(nal: &[u8]) -> Vec<u32> {
    let mut types = Vec::new();
    if nal_unit_type(nal) != nal_type::SEI {
        return types;
    }
    let data = rbsp(nal.get(1..).unwrap_or_default());
    let mut i = 0usize;
    // Stop at the rbsp_trailing_bits byte (0x80).
    while i < data.len() && !(i + 1 == data.len() && data[i] == 0x80) {
        let mut ptype = 0u32;
        while i < data.len() && data[i] == 0xff {
            ptype += 255;
            i += 1;
        }
        let Some(&last) = data.get(i) else { break };
        ptype += u32::from(last);
        i += 1;
        let mut psize = 0usize;
        while i < data.len() && data[i] == 0xff {
            psize += 255;
            i += 1;
        }
        let Some(&last) = data.get(i) else { break };
        psize += usize::from(last);
        i += 1;
        types.push(ptype);
        i += psize;
    }
    types
}

/// `true` if the AU carries a recovery point SEI message.
pub fn has_recovery_point_sei(au: &[u8]) -> bool {
    nal_units(au).any(|n| sei_payload_types(n).contains(&SEI_RECOVERY_POINT))
}

/// `true` if the AU contains an IDR slice.
pub fn has_idr(au: &[u8]) -> bool {
    nal_units(au).any(|n| nal_unit_type(n) == nal_type::IDR)
}

/// NAL unit types of an AU in order.
pub fn nal_types(au: &[u8]) -> Vec<u8> {
    nal_units(au).map(nal_unit_type).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_nals_with_3_and_4_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0x88, 0,
        ];
        let nals: Vec<_> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 0x88][..]]
        );
    }

    #[test]
    fn removes_emulation_prevention() {
        assert_eq!(rbsp(&[0, 0, 3, 1, 0, 0, 3, 0]), vec![0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 -> 0, 1, 2, 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.ue(), Some(0));
        assert_eq!(r.ue(), Some(1));
        assert_eq!(r.ue(), Some(2));
        assert_eq!(r.ue(), Some(3));
    }

    #[test]
    fn sei_types() {
        // SEI: type 6 size 1 payload 0x80..., type 5 size 2
        let nal = [0x06, 0x06, 0x01, 0x84, 0x05, 0x02, 0xaa, 0xbb, 0x80];
        assert_eq!(sei_payload_types(&nal), vec![6, 5]);
    }

    #[test]
    fn au_split_by_first_mb_without_aud() {
        // SPS, PPS, IDR(first_mb=0), P(first_mb=0), P slice 2 (first_mb!=0), P(first_mb=0)
        let data = [
            0, 0, 0, 1, 0x67, 0x42, //
            0, 0, 0, 1, 0x68, 0xce, //
            0, 0, 0, 1, 0x65, 0x88, //
            0, 0, 0, 1, 0x41, 0x9a, //
            0, 0, 0, 1, 0x41, 0x40, //
            0, 0, 0, 1, 0x41, 0x9a,
        ];
        let aus = split_access_units(&data);
        assert_eq!(aus.len(), 3);
        assert_eq!(nal_types(aus[0]), vec![7, 8, 5]);
        assert_eq!(nal_types(aus[1]), vec![1, 1]);
        assert_eq!(nal_types(aus[2]), vec![1]);
    }
}
