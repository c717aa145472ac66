//! Arbitrary RTP packet sequences into the depacketizer: it must never panic, and what it
//! emits must be Annex-B.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use spot_ptz_stream::media::depacketizer::{Depacketizer, RtpInfo};

fuzz_target!(|data: &[u8]| {
    let mut depacketizer = Depacketizer::new(Duration::from_millis(0));
    let now = Instant::now();
    // Each record: 2 bytes sequence, 1 byte timestamp step, 1 byte marker, 1 byte length, payload.
    let mut rest = data;
    let mut timestamp = 0u32;
    while rest.len() >= 5 {
        let sequence_number = u16::from_be_bytes([rest[0], rest[1]]);
        timestamp = timestamp.wrapping_add(u32::from(rest[2]) * 3000);
        let marker = rest[3] & 1 == 1;
        let len = usize::from(rest[4]).min(rest.len() - 5);
        let payload = &rest[5..5 + len];
        rest = &rest[5 + len..];
        let rtp = RtpInfo { sequence_number, timestamp, marker };
        if let Some(au) = depacketizer.push(rtp, payload, now) {
            assert!(au.data.starts_with(&[0, 0, 0, 1]));
        }
    }
});
