//! The inverse-CDF ROM of the noise lane.

use rust_hdl::prelude::*;
use std::collections::BTreeMap;
use thermo_sim::noise::icdf_rom;

/// 512 x 32-bit synchronous ROM, entry `addr` = `c0 << 16 | (-c1 as u16)` of
/// `thermo_sim::noise::icdf_rom()[addr]` (the slope `c1` is never positive, so the noise lane
/// multiplies its magnitude unsigned; one clock of read latency; four SB_RAM40_4K on iCE40, one
/// DP16KD on ECP5).
pub type IcdfRom = SyncROM<Bits<32>, 9>;

/// The ROM contents as 32-bit words.
pub fn icdf_words() -> Vec<u32> {
    icdf_rom()
        .iter()
        .map(|e| {
            assert!(
                e.c0 >= 0 && e.c1 <= 0,
                "ICDF entry {e:?} out of the ROM's range"
            );
            ((e.c0 as u32) << 16) | (-(e.c1 as i32)) as u32
        })
        .collect()
}

/// A fresh ROM holding [`icdf_words`].
pub fn new_icdf_rom() -> IcdfRom {
    let mut map = BTreeMap::new();
    for (i, w) in icdf_words().into_iter().enumerate() {
        map.insert((i as u64).to_bits(), (w as u64).to_bits());
    }
    SyncROM::new(map)
}
