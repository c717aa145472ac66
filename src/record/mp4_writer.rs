//! A small fragmented-MP4 writer for H.264 access units, without decoding or re-encoding.
//!
//! The file is an init segment (`ftyp` + `moov` with an `avc1`/`avcC` sample description and
//! `mvex`), then one `moof` + `mdat` per fragment of about [`Mp4Writer::new`]'s
//! `fragment_duration`. Every complete fragment is a playable file prefix: a recording cut short
//! by a crash or a lost stream loses at most the last fragment. After each fragment the movie
//! duration (`mvhd`, `tkhd`, `mehd`) is patched in place, so players show the right length
//! even when [`Mp4Writer::finish`] never ran.
//!
//! Timing: the media timescale is the RTP clock (90 kHz). [`RtpTimeline`] turns wrapping 32-bit
//! RTP timestamps into a monotonic decode time, bridging reconnects (a new session starts at a
//! random RTP timestamp) with the arrival clock. Each sample lasts until the next one starts,
//! so a sample is written once its successor arrived (the last one gets the previous duration).
//!
//! Samples are Annex-B access units (start codes) converted to 4-byte length prefixes. SPS/PPS
//! identical to the sample description and access unit delimiters are removed; parameter sets
//! that differ (a resolution change) stay in-band so decoders still see them.

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use crate::media::depacketizer::nal_type;
use crate::media::h264::{H264SyntaxError, SpsInfo, annex_b_nal_units, nal_kind, parse_sps};

/// Media timescale: the RTP clock of H.264 video.
pub const TIMESCALE_HZ: u32 = 90_000;
/// Movie (`mvhd`) timescale: milliseconds.
const MOVIE_TIMESCALE_HZ: u32 = 1_000;
/// Duration of the last sample when no earlier duration is known (one frame at 30 fps).
const DEFAULT_SAMPLE_TICKS: u32 = TIMESCALE_HZ / 30;
const TRACK_ID: u32 = 1;
/// `trun` sample flags: a sync sample (depends on no other picture).
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `trun` sample flags: depends on others, not a sync sample.
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Why the MP4 could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    #[error("could not write the MP4 file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the first sample must be an IDR access unit carrying SPS and PPS")]
    MissingParameterSets,
    #[error("the SPS could not be parsed: {0}")]
    BadSps(#[from] H264SyntaxError),
    #[error("internal error of the MP4 writer: {0}")]
    Internal(&'static str),
    #[error("a fragment of {size_bytes} bytes is too large for a 32-bit box")]
    FragmentTooLarge { size_bytes: u64 },
    #[error(
        "the stream's {which} is {size_bytes} bytes, more than an MP4 sample description can hold (65535); the camera's stream is not recordable as MP4"
    )]
    ParameterSetTooLarge {
        which: &'static str,
        size_bytes: usize,
    },
    #[error(
        "the stream's picture size {width}x{height} does not fit an MP4 sample description (at most 65535 per side)"
    )]
    PictureTooLarge { width: u32, height: u32 },
}

/// What [`Mp4Writer::push`] did with an access unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for the current fragment.
    Queued,
    /// Dropped: the recording has not started and this is no IDR with SPS/PPS.
    WaitingForKeyframe,
}

/// Totals of a recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mp4Summary {
    pub samples: u64,
    pub sync_samples: u64,
    pub fragments: u32,
    /// Sum of the sample durations in 90 kHz ticks.
    pub duration_ticks: u64,
    pub bytes_written: u64,
    pub width: u32,
    pub height: u32,
}

impl Mp4Summary {
    /// The recorded duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_ticks as f64 / f64::from(TIMESCALE_HZ))
    }
}

/// Monotonic 90 kHz decode times from wrapping RTP timestamps.
///
/// Consecutive timestamps are unwrapped with a signed 32-bit difference. A step that
/// disagrees with the arrival clock by more than `max_disagreement` (a reconnect, a camera
/// restart) is replaced by the arrival-time step. Decode times never go backwards: a
/// non-increasing step becomes one tick.
#[derive(Clone, Debug)]
pub struct RtpTimeline {
    last: Option<(u32, Instant, u64)>,
    max_disagreement: Duration,
}

impl RtpTimeline {
    pub fn new(max_disagreement: Duration) -> Self {
        Self {
            last: None,
            max_disagreement,
        }
    }

    /// The decode time in 90 kHz ticks of a frame (0 for the first one).
    pub fn decode_time_ticks(&mut self, rtp_timestamp: u32, arrival: Instant) -> u64 {
        let Some((last_rtp, last_arrival, last_ticks)) = self.last else {
            self.last = Some((rtp_timestamp, arrival, 0));
            return 0;
        };
        let rtp_step = i64::from(rtp_timestamp.wrapping_sub(last_rtp) as i32);
        let arrival_step = arrival.saturating_duration_since(last_arrival);
        let arrival_ticks = duration_to_ticks(arrival_step);
        let max_disagreement_ticks = duration_to_ticks(self.max_disagreement);
        let step = if rtp_step.abs_diff(arrival_ticks as i64) > max_disagreement_ticks {
            tracing::debug!(
                rtp_step,
                arrival_ticks,
                "RTP timestamp discontinuity; using the arrival clock"
            );
            arrival_ticks
        } else {
            u64::try_from(rtp_step).unwrap_or(0)
        };
        let ticks = last_ticks.saturating_add(step.max(1));
        self.last = Some((rtp_timestamp, arrival, ticks));
        ticks
    }
}

fn duration_to_ticks(duration: Duration) -> u64 {
    let ticks = duration.as_nanos() * u128::from(TIMESCALE_HZ) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

struct ParameterSets {
    sps: Vec<u8>,
    pps: Vec<u8>,
    info: SpsInfo,
}

struct Sample {
    data: Vec<u8>,
    decode_time_ticks: u64,
    is_sync: bool,
}

struct FinishedSample {
    size_bytes: u32,
    duration_ticks: u32,
    is_sync: bool,
}

/// Byte offsets (from the start of the file) of the duration fields patched after each fragment.
struct DurationFields {
    mvhd_u32: u64,
    tkhd_u32: u64,
    mehd_u64: u64,
}

/// Writes H.264 access units to a fragmented MP4.
pub struct Mp4Writer<W: Write + Seek> {
    out: W,
    fragment_ticks: u64,
    params: Option<ParameterSets>,
    fields: Option<DurationFields>,
    /// The newest sample: written once the next one gives its duration.
    held: Option<Sample>,
    fragment: Vec<FinishedSample>,
    fragment_data: Vec<u8>,
    fragment_start_ticks: u64,
    last_duration_ticks: u32,
    in_band_parameter_sets_warned: bool,
    summary: Mp4Summary,
}

impl<W: Write + Seek> Mp4Writer<W> {
    /// A writer that emits a fragment about every `fragment_duration` of media. Nothing is
    /// written before the first IDR.
    pub fn new(out: W, fragment_duration: Duration) -> Self {
        Self {
            out,
            fragment_ticks: duration_to_ticks(fragment_duration).max(1),
            params: None,
            fields: None,
            held: None,
            fragment: Vec::new(),
            fragment_data: Vec::new(),
            fragment_start_ticks: 0,
            last_duration_ticks: DEFAULT_SAMPLE_TICKS,
            in_band_parameter_sets_warned: false,
            summary: Mp4Summary::default(),
        }
    }

    /// Whether the init segment was written (an IDR arrived).
    pub fn started(&self) -> bool {
        self.params.is_some()
    }

    /// Totals so far (samples still held back are not counted yet).
    pub fn summary(&self) -> Mp4Summary {
        self.summary
    }

    /// Adds one Annex-B access unit with its decode time (90 kHz ticks, non-decreasing).
    pub fn push(
        &mut self,
        annex_b: &[u8],
        decode_time_ticks: u64,
        is_idr: bool,
    ) -> Result<PushOutcome, Mp4Error> {
        if self.params.is_none() {
            if !is_idr {
                return Ok(PushOutcome::WaitingForKeyframe);
            }
            let sps = annex_b_nal_units(annex_b).find(|n| nal_kind(n) == nal_type::SPS);
            let pps = annex_b_nal_units(annex_b).find(|n| nal_kind(n) == nal_type::PPS);
            let (Some(sps), Some(pps)) = (sps, pps) else {
                return Ok(PushOutcome::WaitingForKeyframe);
            };
            let info = parse_sps(sps)?;
            let params = ParameterSets {
                sps: sps.to_vec(),
                pps: pps.to_vec(),
                info,
            };
            params.check_sample_description()?;
            self.write_init_segment(&params)?;
            self.summary.width = info.width;
            self.summary.height = info.height;
            self.fragment_start_ticks = decode_time_ticks;
            self.params = Some(params);
        }
        let data = self.length_prefixed_sample(annex_b);
        let sample = Sample {
            data,
            decode_time_ticks,
            is_sync: is_idr,
        };
        if let Some(previous) = self.held.replace(sample) {
            let duration = decode_time_ticks.saturating_sub(previous.decode_time_ticks);
            let duration = u32::try_from(duration).unwrap_or(u32::MAX).max(1);
            self.last_duration_ticks = duration;
            self.append(previous, duration)?;
        }
        if self.buffered_ticks() >= self.fragment_ticks {
            self.flush_fragment()?;
        }
        Ok(PushOutcome::Queued)
    }

    /// Writes the held sample and the last fragment, patches the durations and flushes.
    /// Returns the totals and the output.
    pub fn finish(mut self) -> Result<(Mp4Summary, W), Mp4Error> {
        if let Some(last) = self.held.take() {
            let duration = self.last_duration_ticks;
            self.append(last, duration)?;
        }
        self.flush_fragment()?;
        self.out.flush()?;
        Ok((self.summary, self.out))
    }

    fn buffered_ticks(&self) -> u64 {
        self.fragment
            .iter()
            .map(|s| u64::from(s.duration_ticks))
            .sum()
    }

    fn append(&mut self, sample: Sample, duration_ticks: u32) -> Result<(), Mp4Error> {
        let size_bytes =
            u32::try_from(sample.data.len()).map_err(|_| Mp4Error::FragmentTooLarge {
                size_bytes: sample.data.len() as u64,
            })?;
        if self.fragment.is_empty() {
            self.fragment_start_ticks = sample.decode_time_ticks;
        }
        self.fragment_data.extend_from_slice(&sample.data);
        self.fragment.push(FinishedSample {
            size_bytes,
            duration_ticks,
            is_sync: sample.is_sync,
        });
        Ok(())
    }

    /// Annex-B → 4-byte length prefixes, without AUDs and the sample description's SPS/PPS.
    fn length_prefixed_sample(&mut self, annex_b: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(annex_b.len());
        let mut in_band = false;
        for nal in annex_b_nal_units(annex_b) {
            let kind = nal_kind(nal);
            if kind == nal_type::AUD {
                continue;
            }
            if let Some(params) = &self.params {
                if kind == nal_type::SPS && nal == params.sps.as_slice()
                    || kind == nal_type::PPS && nal == params.pps.as_slice()
                {
                    continue;
                }
                if kind == nal_type::SPS || kind == nal_type::PPS {
                    in_band = true;
                }
            }
            let Ok(len) = u32::try_from(nal.len()) else {
                continue;
            };
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(nal);
        }
        if in_band && !self.in_band_parameter_sets_warned {
            self.in_band_parameter_sets_warned = true;
            tracing::warn!(
                "the stream's SPS/PPS changed during the recording (resolution change?); keeping them in-band, some players may show the new part at the old size"
            );
        }
        out
    }

    fn write_init_segment(&mut self, params: &ParameterSets) -> Result<(), Mp4Error> {
        let base = self.out.stream_position()?;
        let mut buf = Vec::with_capacity(1024);
        write_box(&mut buf, b"ftyp", |b| {
            b.extend_from_slice(b"isom");
            b.extend_from_slice(&0x200u32.to_be_bytes());
            for brand in [b"isom", b"iso6", b"avc1", b"mp41"] {
                b.extend_from_slice(brand);
            }
        });
        write_box(&mut buf, b"moov", |moov| {
            write_full_box(moov, b"mvhd", 0, 0, |b| {
                put_u32s(b, &[0, 0, MOVIE_TIMESCALE_HZ, 0]);
                put_u32s(b, &[0x0001_0000]); // rate 1.0
                b.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
                b.extend_from_slice(&[0; 10]);
                put_matrix(b);
                b.extend_from_slice(&[0; 24]);
                put_u32s(b, &[TRACK_ID + 1]);
            });
            write_box(moov, b"trak", |trak| {
                write_full_box(trak, b"tkhd", 0, 0x3, |b| {
                    put_u32s(b, &[0, 0, TRACK_ID, 0, 0]);
                    b.extend_from_slice(&[0; 8]);
                    b.extend_from_slice(&[0; 8]); // layer, alternate group, volume, reserved
                    put_matrix(b);
                    put_u32s(b, &[params.info.width << 16, params.info.height << 16]);
                });
                write_box(trak, b"mdia", |mdia| {
                    write_full_box(mdia, b"mdhd", 0, 0, |b| {
                        put_u32s(b, &[0, 0, TIMESCALE_HZ, 0]);
                        b.extend_from_slice(&0x55C4u16.to_be_bytes()); // "und"
                        b.extend_from_slice(&[0; 2]);
                    });
                    write_full_box(mdia, b"hdlr", 0, 0, |b| {
                        put_u32s(b, &[0]);
                        b.extend_from_slice(b"vide");
                        b.extend_from_slice(&[0; 12]);
                        b.extend_from_slice(b"Spot CAM\0");
                    });
                    write_box(mdia, b"minf", |minf| {
                        write_full_box(minf, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
                        write_box(minf, b"dinf", |dinf| {
                            write_full_box(dinf, b"dref", 0, 0, |b| {
                                put_u32s(b, &[1]);
                                write_full_box(b, b"url ", 0, 1, |_| {});
                            });
                        });
                        write_box(minf, b"stbl", |stbl| {
                            write_full_box(stbl, b"stsd", 0, 0, |b| {
                                put_u32s(b, &[1]);
                                write_avc1(b, params);
                            });
                            write_full_box(stbl, b"stts", 0, 0, |b| put_u32s(b, &[0]));
                            write_full_box(stbl, b"stsc", 0, 0, |b| put_u32s(b, &[0]));
                            write_full_box(stbl, b"stsz", 0, 0, |b| put_u32s(b, &[0, 0]));
                            write_full_box(stbl, b"stco", 0, 0, |b| put_u32s(b, &[0]));
                        });
                    });
                });
            });
            write_box(moov, b"mvex", |mvex| {
                write_full_box(mvex, b"mehd", 1, 0, |b| {
                    b.extend_from_slice(&0u64.to_be_bytes());
                });
                write_full_box(mvex, b"trex", 0, 0, |b| {
                    put_u32s(b, &[TRACK_ID, 1, 0, 0, 0]);
                });
            });
        });
        // Locate the duration fields to patch after each fragment.
        let mvhd = find_box(&buf, b"mvhd").ok_or(Mp4Error::Internal("no mvhd"))?;
        let tkhd = find_box(&buf, b"tkhd").ok_or(Mp4Error::Internal("no tkhd"))?;
        let mehd = find_box(&buf, b"mehd").ok_or(Mp4Error::Internal("no mehd"))?;
        self.fields = Some(DurationFields {
            // box header 8 + version/flags 4 + creation 4 + modification 4 + timescale 4
            mvhd_u32: base + mvhd as u64 + 24,
            // box header 8 + version/flags 4 + creation 4 + modification 4 + track_ID 4 + reserved 4
            tkhd_u32: base + tkhd as u64 + 28,
            // box header 8 + version/flags 4
            mehd_u64: base + mehd as u64 + 12,
        });
        self.out.write_all(&buf)?;
        self.summary.bytes_written += buf.len() as u64;
        Ok(())
    }

    fn flush_fragment(&mut self) -> Result<(), Mp4Error> {
        if self.fragment.is_empty() {
            return Ok(());
        }
        let sequence_number = self.summary.fragments + 1;
        let samples = std::mem::take(&mut self.fragment);
        let data = std::mem::take(&mut self.fragment_data);
        let mdat_size = 8 + data.len() as u64;
        if mdat_size > u64::from(u32::MAX) {
            return Err(Mp4Error::FragmentTooLarge {
                size_bytes: mdat_size,
            });
        }
        let moof = build_moof(sequence_number, self.fragment_start_ticks, &samples);
        self.out.write_all(&moof)?;
        self.out.write_all(&(mdat_size as u32).to_be_bytes())?;
        self.out.write_all(b"mdat")?;
        self.out.write_all(&data)?;
        let duration: u64 = samples.iter().map(|s| u64::from(s.duration_ticks)).sum();
        self.summary.fragments = sequence_number;
        self.summary.samples += samples.len() as u64;
        self.summary.sync_samples += samples.iter().filter(|s| s.is_sync).count() as u64;
        self.summary.duration_ticks += duration;
        self.summary.bytes_written += moof.len() as u64 + mdat_size;
        self.fragment_start_ticks = self.fragment_start_ticks.saturating_add(duration);
        self.fragment_data = Vec::with_capacity(data.len());
        self.patch_durations()?;
        tracing::debug!(
            sequence_number,
            samples = samples.len(),
            bytes = mdat_size,
            "MP4 fragment written"
        );
        Ok(())
    }

    /// Writes the current total duration into mvhd, tkhd and mehd, then returns to the end.
    fn patch_durations(&mut self) -> Result<(), Mp4Error> {
        let Some(fields) = &self.fields else {
            return Ok(());
        };
        let movie_units =
            self.summary.duration_ticks * u64::from(MOVIE_TIMESCALE_HZ) / u64::from(TIMESCALE_HZ);
        let movie_u32 = u32::try_from(movie_units).unwrap_or(u32::MAX);
        let (mvhd, tkhd, mehd) = (fields.mvhd_u32, fields.tkhd_u32, fields.mehd_u64);
        self.out.seek(SeekFrom::Start(mvhd))?;
        self.out.write_all(&movie_u32.to_be_bytes())?;
        self.out.seek(SeekFrom::Start(tkhd))?;
        self.out.write_all(&movie_u32.to_be_bytes())?;
        self.out.seek(SeekFrom::Start(mehd))?;
        self.out.write_all(&movie_units.to_be_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        Ok(())
    }
}

fn build_moof(sequence_number: u32, base_decode_ticks: u64, samples: &[FinishedSample]) -> Vec<u8> {
    let mut moof = Vec::with_capacity(64 + samples.len() * 12);
    write_box(&mut moof, b"moof", |moof| {
        write_full_box(moof, b"mfhd", 0, 0, |b| put_u32s(b, &[sequence_number]));
        write_box(moof, b"traf", |traf| {
            // default-base-is-moof: data offsets count from the start of this moof.
            write_full_box(traf, b"tfhd", 0, 0x02_0000, |b| put_u32s(b, &[TRACK_ID]));
            write_full_box(traf, b"tfdt", 1, 0, |b| {
                b.extend_from_slice(&base_decode_ticks.to_be_bytes());
            });
            // data-offset, sample-duration, sample-size and sample-flags present.
            write_full_box(traf, b"trun", 0, 0x0701, |b| {
                put_u32s(b, &[samples.len() as u32]);
                put_u32s(b, &[0]);
                for s in samples {
                    let flags = if s.is_sync {
                        SYNC_SAMPLE_FLAGS
                    } else {
                        NON_SYNC_SAMPLE_FLAGS
                    };
                    put_u32s(b, &[s.duration_ticks, s.size_bytes, flags]);
                }
            });
        });
    });
    // The trun data offset points just past the mdat header that follows the moof.
    if let Some(trun) = find_box(&moof, b"trun") {
        let at = trun + 16;
        let offset = (moof.len() as u32 + 8).to_be_bytes();
        if let Some(field) = moof.get_mut(at..at + 4) {
            field.copy_from_slice(&offset);
        }
    }
    moof
}

impl ParameterSets {
    /// Whether `avc1`/`avcC` can describe the stream: 16-bit sizes and lengths.
    fn check_sample_description(&self) -> Result<(), Mp4Error> {
        for (which, nal) in [("SPS", &self.sps), ("PPS", &self.pps)] {
            if u16::try_from(nal.len()).is_err() {
                return Err(Mp4Error::ParameterSetTooLarge {
                    which,
                    size_bytes: nal.len(),
                });
            }
        }
        let (width, height) = (self.info.width, self.info.height);
        if u16::try_from(width).is_err() || u16::try_from(height).is_err() {
            return Err(Mp4Error::PictureTooLarge { width, height });
        }
        Ok(())
    }
}

/// Writes the sample description; sizes were checked by
/// [`ParameterSets::check_sample_description`].
fn write_avc1(out: &mut Vec<u8>, params: &ParameterSets) {
    write_box(out, b"avc1", |b| {
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&(params.info.width as u16).to_be_bytes());
        b.extend_from_slice(&(params.info.height as u16).to_be_bytes());
        put_u32s(b, &[0x0048_0000, 0x0048_0000, 0]); // 72 dpi, reserved
        b.extend_from_slice(&1u16.to_be_bytes()); // frame_count
        let mut name = [0u8; 32];
        let label = b"spot_ptz_stream";
        name[0] = label.len() as u8;
        name[1..=label.len()].copy_from_slice(label);
        b.extend_from_slice(&name);
        b.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
        b.extend_from_slice(&(-1i16).to_be_bytes());
        write_box(b, b"avcC", |c| {
            c.push(1);
            c.push(params.info.profile_idc);
            c.push(params.info.constraint_flags);
            c.push(params.info.level_idc);
            c.push(0xFF); // 4-byte NAL lengths
            c.push(0xE1); // one SPS
            c.extend_from_slice(&(params.sps.len() as u16).to_be_bytes());
            c.extend_from_slice(&params.sps);
            c.push(1); // one PPS
            c.extend_from_slice(&(params.pps.len() as u16).to_be_bytes());
            c.extend_from_slice(&params.pps);
        });
    });
}

fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn put_matrix(out: &mut Vec<u8>) {
    put_u32s(
        out,
        &[0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000],
    );
}

/// Appends a box: size placeholder, type, the payload written by `body`, then the real size.
fn write_box(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn write_full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, kind, |b| {
        b.push(version);
        b.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(b);
    });
}

/// Offset of the first box of this type anywhere in `data` (searching nested containers).
fn find_box(data: &[u8], kind: &[u8; 4]) -> Option<usize> {
    const CONTAINERS: [&[u8; 4]; 8] = [
        b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf",
    ];
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let this = data.get(pos + 4..pos + 8)?;
        if size < 8 || pos + size > data.len() {
            return None;
        }
        if this == kind {
            return Some(pos);
        }
        if CONTAINERS.iter().any(|c| c.as_slice() == this)
            && let Some(inner) = find_box(data.get(pos + 8..pos + size)?, kind)
        {
            return Some(pos + 8 + inner);
        }
        pos += size;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use crate::media::h264::unescape_rbsp;

    use crate::media::test_stream::encode;

    use super::*;

    fn boxes(data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            out.push(String::from_utf8_lossy(&data[pos + 4..pos + 8]).to_string());
            assert!(size >= 8 && pos + size <= data.len(), "bad box at {pos}");
            pos += size;
        }
        assert_eq!(pos, data.len());
        out
    }

    #[test]
    fn parses_openh264_sps_with_cropping() {
        let frames = encode(640, 360, 1);
        let sps = annex_b_nal_units(&frames[0].0)
            .find(|n| nal_kind(n) == nal_type::SPS)
            .unwrap();
        let info = parse_sps(sps).unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.profile_idc, sps[1]);
        assert!(parse_sps(&sps[..4]).is_err());
        assert!(parse_sps(&[]).is_err());
    }

    #[test]
    fn splits_annex_b_with_both_start_code_lengths() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 9,
        ];
        let nals: Vec<&[u8]> = annex_b_nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 9]]);
        assert_eq!(annex_b_nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(annex_b_nal_units(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn unescapes_emulation_prevention() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }

    #[test]
    fn a_parameter_set_too_large_for_avcc_is_an_error_not_a_broken_file() {
        let frames = encode(320, 240, 1);
        let nals: Vec<&[u8]> = annex_b_nal_units(&frames[0].0).collect();
        let mut oversized = Vec::new();
        for nal in nals {
            oversized.extend_from_slice(&[0, 0, 0, 1]);
            oversized.extend_from_slice(nal);
            if nal_kind(nal) == nal_type::SPS {
                // Trailing bytes the SPS parser never reads: still a parsable SPS.
                oversized.extend(std::iter::repeat_n(0x55, 70_000));
            }
        }
        let mut writer = Mp4Writer::new(Cursor::new(Vec::new()), Duration::from_secs(1));
        let result = writer.push(&oversized, 0, true);
        assert!(
            matches!(
                result,
                Err(Mp4Error::ParameterSetTooLarge { which: "SPS", .. })
            ),
            "{result:?}"
        );
        assert!(!writer.started());
    }

    #[test]
    fn waits_for_an_idr_then_writes_fragments_with_exact_timing() {
        let frames = encode(320, 240, 75);
        let mut writer = Mp4Writer::new(Cursor::new(Vec::new()), Duration::from_secs(1));
        // A non-IDR first frame is dropped.
        assert_eq!(
            writer.push(&frames[1].0, 0, false).unwrap(),
            PushOutcome::WaitingForKeyframe
        );
        assert!(!writer.started());
        for (i, (data, idr)) in frames.iter().enumerate() {
            assert_eq!(
                writer.push(data, i as u64 * 3000, *idr).unwrap(),
                PushOutcome::Queued
            );
        }
        let (summary, out) = writer.finish().unwrap();
        let file = out.into_inner();
        assert_eq!(summary.samples, 75);
        assert_eq!(summary.duration_ticks, 75 * 3000);
        assert_eq!((summary.width, summary.height), (320, 240));
        assert!(summary.sync_samples >= 1);
        assert_eq!(summary.bytes_written, file.len() as u64);
        let top = boxes(&file);
        assert_eq!(&top[..2], ["ftyp", "moov"]);
        // 2.5 s in fragments of 1 s: three moof+mdat pairs.
        assert_eq!(summary.fragments, 3);
        assert_eq!(top.len(), 2 + 2 * 3);
        // The durations were patched: mehd holds 2500 ms.
        let mehd = find_box(&file, b"mehd").unwrap();
        assert_eq!(
            u64::from_be_bytes(file[mehd + 12..mehd + 20].try_into().unwrap()),
            2500
        );
        let mvhd = find_box(&file, b"mvhd").unwrap();
        assert_eq!(
            u32::from_be_bytes(file[mvhd + 24..mvhd + 28].try_into().unwrap()),
            2500
        );
        // The first sample is a sync sample and the trun data offset lands on its length.
        let first_moof = find_box(&file, b"moof").unwrap();
        let trun = first_moof + find_box(&file[first_moof..], b"trun").unwrap();
        let offset = u32::from_be_bytes(file[trun + 16..trun + 20].try_into().unwrap()) as usize;
        let first_flags = u32::from_be_bytes(file[trun + 28..trun + 32].try_into().unwrap());
        assert_eq!(first_flags, SYNC_SAMPLE_FLAGS);
        let first_len = u32::from_be_bytes(
            file[first_moof + offset..first_moof + offset + 4]
                .try_into()
                .unwrap(),
        );
        let first_size = u32::from_be_bytes(file[trun + 24..trun + 28].try_into().unwrap());
        assert!(first_len < first_size);
        // SPS/PPS live in avcC, not in the samples.
        let nal = file[first_moof + offset + 4] & 0x1F;
        assert_ne!(nal, nal_type::SPS);
    }

    #[test]
    fn finish_without_samples_writes_nothing() {
        let writer = Mp4Writer::new(Cursor::new(Vec::new()), Duration::from_secs(1));
        let (summary, out) = writer.finish().unwrap();
        assert_eq!(summary, Mp4Summary::default());
        assert!(out.into_inner().is_empty());
    }

    #[test]
    fn timeline_unwraps_and_bridges_discontinuities() {
        let start = Instant::now();
        let mut t = RtpTimeline::new(Duration::from_secs(1));
        let ms = Duration::from_millis;
        assert_eq!(t.decode_time_ticks(u32::MAX - 1000, start), 0);
        // Wraps: +3000 ticks.
        assert_eq!(t.decode_time_ticks(1999, start + ms(33)), 3000);
        // A reconnect jumps the RTP clock; the arrival clock (+500 ms) is used.
        assert_eq!(t.decode_time_ticks(123_456_789, start + ms(533)), 48_000);
        // Backwards by a little: one tick forward.
        assert_eq!(t.decode_time_ticks(123_456_000, start + ms(534)), 48_001);
        assert_eq!(
            t.decode_time_ticks(123_459_789, start + ms(567)),
            48_001 + 3789
        );
    }
}
