//! The digits data file and loader.

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use thermo_diffusion::data::{Digits, Split, N_IMAGES, PIXELS};

fn data_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv.gz")
}

#[test]
fn committed_file_matches_readme_checksum() {
    let bytes = std::fs::read(data_path()).expect("data/digits.csv.gz is committed");
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let readme = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/README.md"),
    )
    .expect("data/README.md");
    assert!(
        readme.contains(&hex),
        "data/README.md does not state SHA-256 {hex}"
    );
}

#[test]
fn loads_1797_images_with_valid_ranges() {
    let d = Digits::load(&data_path()).expect("loads");
    assert_eq!(d.len(), N_IMAGES);
    assert_eq!(d.labels.len(), N_IMAGES);
    let mut counts = [0usize; 10];
    for &l in &d.labels {
        assert!(l <= 9);
        counts[l as usize] += 1;
    }
    // every class is present with roughly 180 images
    assert!(
        counts.iter().all(|&c| (170..=190).contains(&c)),
        "{counts:?}"
    );
    let max = d.pixels.iter().flat_map(|p| p.iter()).copied().max();
    let min = d.pixels.iter().flat_map(|p| p.iter()).copied().min();
    assert_eq!((min, max), (Some(0), Some(16)));
    // the first image of the UCI test set is a zero
    assert_eq!(d.labels[0], 0);
    assert_eq!(&d.pixels[0][..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
    let u = d.unit_image(0);
    assert_eq!(u.len(), PIXELS);
    assert!(u.iter().all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn malformed_rows_give_clear_errors() {
    let good: String = (0..64).map(|_| "0,").collect::<String>() + "3";
    assert!(Digits::parse(&good, "t").is_ok());
    let cases = [
        (
            (0..63).map(|_| "0,").collect::<String>() + "3",
            "expected 65",
        ),
        ("17,".to_string() + &good[2..], "pixel 0 = 17"),
        (good[..good.len() - 1].to_string() + "10", "label 10"),
        ("x,".to_string() + &good[2..], "not a number"),
        ("1.5,".to_string() + &good[2..], "not an integer"),
        ("-1,".to_string() + &good[2..], "pixel 0 = -1"),
    ];
    for (text, want) in cases {
        let text = format!("{good}\n{text}\n");
        let e = Digits::parse(&text, "t")
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("row 2") && e.contains(want), "{e}");
    }
    assert!(Digits::parse("", "t").is_err());
}

#[test]
fn split_is_fixed_disjoint_and_complete() {
    let a = Split::new(N_IMAGES, 0.2, 7).expect("split");
    let b = Split::new(N_IMAGES, 0.2, 7).expect("split");
    let c = Split::new(N_IMAGES, 0.2, 8).expect("split");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.test.len(), 359);
    assert_eq!(a.train.len() + a.test.len(), N_IMAGES);
    let mut all: Vec<usize> = a.train.iter().chain(&a.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..N_IMAGES).collect::<Vec<_>>());
    assert!(Split::new(10, 1.5, 1).is_err());
}
