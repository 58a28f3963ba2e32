//! Compiler groundwork: rank-k skip factorisations on the committed model's activations.

use std::path::PathBuf;
use thermo_diffusion::data::{default_data_path, Digits, Split};
use thermo_diffusion::gram::{
    collect_activations, gram, gram_weighted, plain_svd, relative_error, skip_matrix,
};
use thermo_diffusion::io;

#[test]
fn rank_k_error_falls_with_k_and_gram_weighted_beats_plain_svd_on_held_out() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/digits-unet.safetensors");
    let model = io::load(&path).expect("committed model loads");
    let d = Digits::load(&default_data_path()).expect("data");
    let split = Split::standard(d.len()).expect("split");
    let train = collect_activations(&model, &d.unit_matrix(&split.train), 2, 1);
    let test = collect_activations(&model, &d.unit_matrix(&split.test), 2, 2);
    assert_eq!(train.len(), 2 * split.train.len());
    for level in 0..2 {
        let name = format!("enc{level}");
        let w = skip_matrix(&model, level).expect("skip block");
        let e_train = train.module(&name).expect("module");
        let e_test = test.module(&name).expect("module");
        assert_eq!(e_train.ncols(), w.ncols());
        let g = gram(e_train);
        let n = w.ncols();
        let mut prev = (f64::INFINITY, f64::INFINITY);
        for k in [1, 2, 4, 8, 16, 32] {
            let gw = gram_weighted(&w, &g, k).expect("gram-weighted");
            let pl = plain_svd(&w, k).expect("svd");
            assert_eq!((gw.rank(), pl.rank()), (k, k));
            assert_eq!(gw.connections(), (w.nrows() + w.ncols()) * k);
            let eg = relative_error(&w, &gw.matrix(), e_test);
            let ep = relative_error(&w, &pl.matrix(), e_test);
            let eg_train = relative_error(&w, &gw.matrix(), e_train);
            let ep_train = relative_error(&w, &pl.matrix(), e_train);
            eprintln!(
                "skip{level} k={k:2}: held-out rel. error gram {eg:.4} plain {ep:.4}; train gram {eg_train:.4} plain {ep_train:.4}; discarded energy gram {:.4} plain {:.4}",
                gw.discarded_energy, pl.discarded_energy
            );
            assert!(
                eg < prev.0 && ep < prev.1,
                "skip{level} k={k}: error must fall with k"
            );
            assert!(
                eg < ep,
                "skip{level} k={k}: gram-weighted {eg} must beat plain SVD {ep} on held-out"
            );
            assert!(eg_train <= ep_train * (1.0 + 1e-9));
            // the Gram-weighted discarded energy is exactly the training-set error (up to the ridge)
            assert!(
                (eg_train - gw.discarded_energy).abs() < 1e-4,
                "{eg_train} vs {}",
                gw.discarded_energy
            );
            prev = (eg, ep);
        }
        // full rank reproduces the block
        let full = gram_weighted(&w, &g, n).expect("full");
        assert!(relative_error(&w, &full.matrix(), e_test) < 1e-8);
        assert!(full.discarded_energy < 1e-12);
    }
}
