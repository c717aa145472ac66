//! The robot's certificate DER into the TLS CN fallback (see ../harness/cert_cn.rs).
#![no_main]

#[path = "../harness/cert_cn.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
