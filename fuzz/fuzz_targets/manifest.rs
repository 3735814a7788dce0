#![no_main]

// See pushdex_fuzz::manifest for the input format and the properties checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushdex_fuzz::manifest(data));
