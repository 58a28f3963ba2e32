//! The link traffic of an EqProp step counted against the board model in memory
//! (`thermo_host::memboard`): each example adds exactly the payload its requests carry, and the
//! count is the same on every call.

use std::path::Path;
use thermo_host::memboard::eqprop_step_traffic;
use thermo_proto::{READOUT_LEN, READOUT_REPLY_HEADER, RUN_LEN, SET_CONDITIONING_HEADER, WORD};
use thermo_sim::eqprop::{teacher_task, Budget, Estimator};
use thermo_sim::Substrate;

#[test]
fn step_traffic_adds_each_examples_requests_and_repeats() {
    let s = Substrate::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/three-module.toml"),
    )
    .unwrap();
    let d = s.units();
    let set = teacher_task(&s, 3, 0.3, 0.0, 0.5, 17).unwrap();
    let budget = Budget {
        burn_in: 2,
        sweeps: 5,
    };
    for (est, phases) in [(Estimator::Symmetric, 3), (Estimator::OneSided, 2)] {
        let t = |n: usize| eqprop_step_traffic(&s, &set[..n], budget, 0.1, est).unwrap();
        let (one, two, three) = (t(1), t(2), t(3));
        // per phase: SET_CONDITIONING of every unit's code, RUN, READOUT of every unit (the
        // shipped example fits one frame each)
        let out = phases * (SET_CONDITIONING_HEADER + WORD * d + RUN_LEN + READOUT_LEN);
        assert_eq!(two.payload_out - one.payload_out, out as u64, "{est:?}");
        assert_eq!(three.payload_out - two.payload_out, out as u64, "{est:?}");
        // the READOUT replies carry every unit's sum
        assert!(
            two.payload_in - one.payload_in >= (phases * (READOUT_REPLY_HEADER + WORD * d)) as u64
        );
        // the weights are written once per step, with the first example
        assert!(one.payload_out > out as u64);
        // frames: 9 bytes around each payload plus COBS and the delimiter
        assert!(one.bytes_sent >= one.payload_out + 11 * one.requests);
        assert_eq!(one.retransmissions + one.timeouts + one.crc_errors, 0);
        let again = t(1);
        assert_eq!(
            (again.bytes_sent, again.bytes_received),
            (one.bytes_sent, one.bytes_received)
        );
    }
}
