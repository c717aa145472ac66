//! Access units into the MP4 writer, output parsed back (see ../harness/mp4_writer.rs).
#![no_main]

#[path = "../harness/mp4_writer.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
