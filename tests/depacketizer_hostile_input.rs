//! The depacketizer takes the camera's packets as untrusted input: a million random and
//! mutated packets (seeded, reproducible) never make it panic, and whatever it emits is
//! Annex-B. Complements the `depacketize` fuzz target on a stable toolchain.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use spot_ptz_stream::media::depacketizer::{Depacketizer, RtpInfo};

#[test]
fn random_and_mutated_packets_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5107_cafe);
    let mut depacketizer = Depacketizer::new(Duration::ZERO);
    let now = Instant::now();
    // Valid-looking building blocks: SPS, PPS, IDR, STAP-A, FU-A start/middle/end.
    let templates: [&[u8]; 6] = [
        &[0x67, 0x42, 0xE0, 0x1F, 0x8C],
        &[0x68, 0xCE, 0x38, 0x80],
        &[0x65, 0x88, 0x84, 0x21],
        &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE],
        &[0x7C, 0x85, 0x01, 0x02],
        &[0x7C, 0x45, 0x03],
    ];
    let mut emitted = 0u64;
    let mut timestamp = 0u32;
    for sequence in 0..1_000_000u32 {
        let mut payload = templates[rng.random_range(0..templates.len())].to_vec();
        match rng.random_range(0..4) {
            0 => payload = (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
            1 => {
                let at = rng.random_range(0..payload.len());
                payload[at] = rng.random();
            }
            2 => payload.truncate(rng.random_range(0..payload.len())),
            _ => {}
        }
        if rng.random_ratio(1, 5) {
            timestamp = timestamp.wrapping_add(3000);
        }
        let sequence_number = if rng.random_ratio(1, 50) {
            rng.random()
        } else {
            sequence as u16
        };
        let rtp = RtpInfo {
            sequence_number,
            timestamp,
            marker: rng.random_ratio(1, 3),
        };
        if let Some(au) = depacketizer.push(rtp, &payload, now) {
            assert!(
                au.data.starts_with(&[0, 0, 0, 1]),
                "not Annex-B: {:?}",
                au.data
            );
            emitted += 1;
        }
    }
    let counters = depacketizer.counters();
    assert_eq!(counters.packets, 1_000_000);
    assert_eq!(counters.frames_emitted, emitted);
    assert!(
        counters.packets_malformed > 0 && emitted > 0,
        "{counters:?}"
    );
}
