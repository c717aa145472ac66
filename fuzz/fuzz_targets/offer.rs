//! The camera's signalling answer body (see ../harness/offer.rs).
#![no_main]

#[path = "../harness/offer.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
