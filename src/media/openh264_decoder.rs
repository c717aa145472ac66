//! openh264, as the decoder thread runs it, with a guard in front for streams whose sequence
//! parameters change.
//!
//! openh264 2.6 reads past its per-macroblock buffers when an SPS changes the picture size
//! while a picture of the old size is still being finished (our `decode` fuzz target found it
//! with an access unit "SPS, PPS, IDR slice, another SPS, slices"; upstream cisco/openh264
//! #3925, unfixed). A camera's stream changes its SPS only to start a new sequence, so the
//! guard does what a new sequence allows:
//!
//! - an access unit is split where a parameter set or access-unit delimiter follows a slice:
//!   by H.264 §7.4.1.2.3 that starts the next access unit, and openh264 is given each part on
//!   its own;
//! - a part that brings an SPS different from the last one the decoder was given gets a new
//!   decoder (no picture of the old sequence is in flight then);
//! - an SPS our own syntax reader cannot parse is not passed on (openh264 would refuse it too).
//!
//! The common case (the same SPS again, no parameter set after a slice) passes the caller's
//! bytes through without a copy.

use openh264::OpenH264API;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};

use crate::media::decoder::DecoderError;
use crate::media::h264::{self, annex_b_nal_units, nal_kind};

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_ACCESS_UNIT_DELIMITER: u8 = 9;
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// A decode error from openh264 (the bitstream is damaged or unsupported).
#[derive(Debug, thiserror::Error)]
#[error("openh264 could not decode the access unit: {0}")]
pub struct Openh264Error(String);

/// See the module docs.
pub struct Openh264Decoder {
    decoder: Decoder,
    /// The last SPS NAL unit given to `decoder`.
    last_sps: Option<Vec<u8>>,
    /// Decoders replaced because the SPS changed.
    restarts: u64,
}

fn new_decoder() -> Result<Decoder, DecoderError> {
    // No flush after each frame: pictures come out as soon as they are decoded.
    Decoder::with_api_config(
        OpenH264API::from_source(),
        DecoderConfig::new().flush_after_decode(Flush::NoFlush),
    )
    .map_err(|e| DecoderError::Create(e.to_string()))
}

/// One part of an access unit, as openh264 is to be given it.
struct Part<'a> {
    nals: Vec<&'a [u8]>,
    /// Its last SPS, if it has one.
    last_sps: Option<&'a [u8]>,
}

/// Splits an access unit's NAL units where a parameter set or delimiter follows a slice, and
/// leaves out SPSs that do not parse; also says whether that changed anything (when not, the
/// caller's bytes can be given as they are).
fn split(access_unit: &[u8]) -> (Vec<Part<'_>>, bool) {
    let new_part = || Part {
        nals: Vec::new(),
        last_sps: None,
    };
    let mut parts = vec![new_part()];
    let mut changed = false;
    let mut after_slice = false;
    for nal in annex_b_nal_units(access_unit) {
        let kind = nal_kind(nal);
        let starts_unit = matches!(kind, NAL_SPS | NAL_PPS | NAL_ACCESS_UNIT_DELIMITER);
        if starts_unit && after_slice {
            parts.push(new_part());
            after_slice = false;
            changed = true;
        }
        if kind == NAL_SPS && h264::parse_sps(nal).is_err() {
            changed = true;
            continue;
        }
        after_slice |= (NAL_SLICE..=NAL_IDR).contains(&kind);
        if let Some(part) = parts.last_mut() {
            part.nals.push(nal);
            if kind == NAL_SPS {
                part.last_sps = Some(nal);
            }
        }
    }
    (parts, changed)
}

impl Openh264Decoder {
    pub fn new() -> Result<Self, DecoderError> {
        Ok(Self {
            decoder: new_decoder()?,
            last_sps: None,
            restarts: 0,
        })
    }

    /// Decoders replaced so far because the stream's SPS changed.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Decodes one access unit; `on_picture` is called with each picture it gives, and the
    /// last call's result returned (`None`: no picture). An error is returned only when no
    /// part of the access unit gave a picture.
    pub fn decode<R>(
        &mut self,
        access_unit: &[u8],
        mut on_picture: impl FnMut(&DecodedYUV<'_>) -> R,
    ) -> Result<Option<R>, Openh264Error> {
        let (parts, changed) = split(access_unit);
        let mut result = None;
        let mut error = None;
        let mut buffer = Vec::new();
        for part in &parts {
            let bytes = if changed {
                buffer.clear();
                for nal in &part.nals {
                    buffer.extend_from_slice(&START_CODE);
                    buffer.extend_from_slice(nal);
                }
                &buffer[..]
            } else {
                access_unit
            };
            if bytes.is_empty() {
                continue;
            }
            self.restart_on_new_sps(part.last_sps)
                .map_err(|e| Openh264Error(e.to_string()))?;
            match self.decoder.decode(bytes) {
                Ok(Some(yuv)) => result = Some(on_picture(&yuv)),
                Ok(None) => {}
                Err(e) => {
                    error.get_or_insert(Openh264Error(e.to_string()));
                }
            }
        }
        match (result, error) {
            (None, Some(error)) => Err(error),
            (result, _) => Ok(result),
        }
    }

    /// A new decoder when `sps` (a part's last SPS) is not the last one given to the decoder.
    fn restart_on_new_sps(&mut self, sps: Option<&[u8]>) -> Result<(), DecoderError> {
        let Some(sps) = sps else {
            return Ok(());
        };
        match &self.last_sps {
            Some(last) if last.as_slice() == sps => return Ok(()),
            Some(_) => {
                self.decoder = new_decoder()?;
                self.restarts += 1;
                tracing::debug!(
                    restarts = self.restarts,
                    "the stream's SPS changed: a new openh264 decoder"
                );
            }
            None => {}
        }
        self.last_sps = Some(sps.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_stream;
    use openh264::formats::YUVSource as _;

    #[test]
    fn a_stream_with_its_sps_repeated_decodes_without_restarts() {
        let mut decoder = Openh264Decoder::new().unwrap();
        let mut pictures = 0;
        for (au, _) in test_stream::encode(160, 96, 10) {
            if decoder.decode(&au, |_| ()).unwrap().is_some() {
                pictures += 1;
            }
        }
        assert_eq!(pictures, 10);
        assert_eq!(decoder.restarts(), 0);
    }

    #[test]
    fn a_new_size_mid_access_unit_is_split_and_decoded_by_a_new_decoder() {
        let small = test_stream::encode(160, 96, 2);
        let large = test_stream::encode(320, 192, 2);
        // One "access unit" with the small stream's IDR and then the large stream's IDR: what
        // a broken packetizer, or an attacker, could send.
        let mut joined = small[0].0.clone();
        joined.extend_from_slice(&large[0].0);
        let mut decoder = Openh264Decoder::new().unwrap();
        let mut sizes = Vec::new();
        let last = decoder
            .decode(&joined, |yuv| {
                sizes.push(yuv.dimensions());
                yuv.dimensions()
            })
            .unwrap();
        assert_eq!(sizes, vec![(160, 96), (320, 192)]);
        assert_eq!(last, Some((320, 192)));
        assert_eq!(decoder.restarts(), 1);
        // And the large stream goes on.
        let next = decoder.decode(&large[1].0, |yuv| yuv.dimensions()).unwrap();
        assert_eq!(next, Some((320, 192)));
    }

    #[test]
    fn an_sps_that_does_not_parse_is_left_out() {
        let (au, _) = test_stream::encode(160, 96, 1).remove(0);
        let mut broken = vec![0, 0, 0, 1, 0x67, 0xff];
        broken.extend_from_slice(&au);
        let (parts, changed) = split(&broken);
        assert!(changed);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].nals.iter().all(|nal| nal != &[0x67, 0xff]));
        let mut decoder = Openh264Decoder::new().unwrap();
        assert!(decoder.decode(&broken, |_| ()).unwrap().is_some());
    }
}
