#![no_main]

// See pushdex_fuzz::log_frames for the input format and the properties checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushdex_fuzz::log_frames(data));
