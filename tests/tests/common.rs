//! Shared set-up for the integration tests: a system whose messages are captured.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use dma_core::{Coherence, Device, DeviceConfig, DmaMask, Options, System};

/// A system built from `opts` whose messages land in the returned log.
pub fn system(opts: &str) -> (Arc<System>, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let sys = System::builder()
        .options(Options::parse(opts).expect("test options parse"))
        .log_sink(Arc::new(move |_, msg: &str| sink.lock().unwrap().push(msg.to_owned())))
        .build()
        .expect("system builds");
    (sys, log)
}

/// A device on `sys`.
pub fn device(sys: &Arc<System>, name: &str, coherence: Coherence, bits: u32) -> Arc<Device> {
    Device::new(sys, DeviceConfig::new(name).coherence(coherence).mask(DmaMask::bits(bits))).expect("device")
}

/// True when some captured message contains `needle`.
pub fn logged(log: &Mutex<Vec<String>>, needle: &str) -> bool {
    log.lock().unwrap().iter().any(|m| m.contains(needle))
}
