//! Safetensors round trip and malformed-file errors that name the tensor.

use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use thermo_diffusion::{io, Unet, UnetConfig};

fn model() -> Unet {
    Unet::new(&UnetConfig::default(), 11).expect("model")
}

/// Build a safetensors file from `m`, letting `edit` change (name, shape, f32 values) entries
/// (return `None` to drop a tensor), with or without the `config` metadata.
fn build(
    m: &Unet,
    with_config: bool,
    edit: impl Fn(&str, Vec<usize>, Vec<f32>) -> Option<(String, Vec<usize>, Vec<f32>)>,
) -> Vec<u8> {
    let shapes = m.config.tensor_shapes();
    let entries: Vec<(String, Vec<usize>, Vec<u8>)> = m
        .tensors()
        .into_iter()
        .zip(shapes)
        .filter_map(|((name, data), (_, shape))| edit(&name, shape, data.to_vec()))
        .map(|(n, s, d)| (n, s, d.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView)> = entries
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("view"),
            )
        })
        .collect();
    let mut meta = HashMap::new();
    if with_config {
        meta.insert(
            "config".to_string(),
            serde_json::to_string(&m.config).expect("json"),
        );
    }
    safetensors::serialize(views, Some(meta)).expect("serialize")
}

fn err_of(bytes: &[u8]) -> String {
    io::from_bytes(bytes).expect_err("must fail").to_string()
}

#[test]
fn round_trip_is_exact() {
    let m = model();
    let extra = [
        ("note".to_string(), "test".to_string()),
        ("a".to_string(), "1".to_string()),
    ];
    let bytes = io::to_bytes(&m, &extra).expect("bytes");
    let back = io::from_bytes(&bytes).expect("load");
    assert_eq!(m, back);
    // deterministic bytes (metadata order included)
    for _ in 0..5 {
        assert_eq!(io::to_bytes(&m, &extra).expect("bytes"), bytes);
    }
    let mut info = io::read_info(&bytes).expect("info");
    info.sort();
    assert_eq!(
        info,
        [
            ("a".to_string(), "1".to_string()),
            ("note".to_string(), "test".to_string())
        ]
    );
    let dir = std::env::temp_dir().join(format!("thermo-diffusion-io-{}", std::process::id()));
    let path = dir.join("m.safetensors");
    io::save(&m, &path, &[]).expect("save");
    assert_eq!(io::load(&path).expect("load"), m);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pytorch_style_file_without_config_metadata_loads() {
    let m = model();
    let bytes = build(&m, false, |n, s, d| Some((n.to_string(), s, d)));
    assert_eq!(io::from_bytes(&bytes).expect("load"), m);
}

#[test]
fn documented_names_and_shapes() {
    let shapes = UnetConfig::default().tensor_shapes();
    let get = |n: &str| shapes.iter().find(|(k, _)| k == n).map(|(_, s)| s.clone());
    assert_eq!(get("enc0.weight"), Some(vec![128, 64]));
    assert_eq!(get("enc1.weight"), Some(vec![64, 128]));
    assert_eq!(get("bottleneck.weight"), Some(vec![32, 64]));
    assert_eq!(get("dec1.weight"), Some(vec![64, 32]));
    assert_eq!(get("skip1.weight"), Some(vec![64, 64]));
    assert_eq!(get("dec0.weight"), Some(vec![128, 64]));
    assert_eq!(get("skip0.weight"), Some(vec![128, 128]));
    assert_eq!(get("out.weight"), Some(vec![64, 128]));
    assert_eq!(get("dec0_emb.weight"), Some(vec![128, 16]));
    assert_eq!(get("out.bias"), Some(vec![64]));
    assert_eq!(shapes.len(), 19);
    // the README documents every tensor
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    for (n, s) in &shapes {
        let line = format!("`{n}` | `{s:?}`");
        assert!(readme.contains(&line), "diffusion/README.md lacks `{line}`");
    }
}

#[test]
fn missing_tensor_is_named() {
    let m = model();
    for with_config in [true, false] {
        let b = build(&m, with_config, |n, s, d| {
            (n != "skip0.weight").then(|| (n.to_string(), s, d))
        });
        let e = err_of(&b);
        assert!(e.contains("skip0.weight") && e.contains("missing"), "{e}");
    }
}

#[test]
fn wrong_shape_is_named() {
    let m = model();
    let b = build(&m, true, |n, s, d| {
        if n == "dec1.weight" {
            Some((n.to_string(), vec![32, 64], d))
        } else {
            Some((n.to_string(), s, d))
        }
    });
    let e = err_of(&b);
    assert!(
        e.contains("dec1.weight") && e.contains("wrong shape"),
        "{e}"
    );
    let b = build(&m, true, |n, s, d| {
        if n == "skip1.weight" {
            Some((n.to_string(), vec![64, 63], d[..64 * 63].to_vec()))
        } else {
            Some((n.to_string(), s, d))
        }
    });
    let e = err_of(&b);
    assert!(e.contains("skip1.weight") && e.contains("[64, 63]"), "{e}");
}

#[test]
fn nan_and_inf_are_named() {
    let m = model();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let b = build(&m, true, |n, s, mut d| {
            if n == "bottleneck.bias" {
                d[3] = bad;
            }
            Some((n.to_string(), s, d))
        });
        let e = err_of(&b);
        assert!(
            e.contains("bottleneck.bias") && e.contains("index 3"),
            "{e}"
        );
    }
}

#[test]
fn unexpected_tensor_wrong_dtype_and_garbage_are_rejected() {
    let m = model();
    let b = build(&m, true, |n, s, d| {
        Some((
            if n == "out.bias" {
                "out.bias2".to_string()
            } else {
                n.to_string()
            },
            s,
            d,
        ))
    });
    let e = err_of(&b);
    assert!(e.contains("out.bias2") && e.contains("unexpected"), "{e}");
    // an F16 tensor
    let raw = vec![0u8; 64 * 2];
    let v = TensorView::new(Dtype::F16, vec![64], &raw).expect("view");
    let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for ((n, d), (_, s)) in m.tensors().into_iter().zip(m.config.tensor_shapes()) {
        if n != "out.bias" {
            entries.push((n, s, d.iter().flat_map(|v| v.to_le_bytes()).collect()));
        }
    }
    let mut views: Vec<(String, TensorView)> = entries
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("view"),
            )
        })
        .collect();
    views.push(("out.bias".to_string(), v));
    let b = safetensors::serialize(views, None).expect("serialize");
    let e = err_of(&b);
    assert!(e.contains("out.bias") && e.contains("dtype"), "{e}");
    assert!(io::from_bytes(b"not a safetensors file").is_err());
    assert!(io::from_bytes(&[]).is_err());
}

#[test]
fn bad_metadata_is_rejected() {
    let m = model();
    let bytes = io::to_bytes(&m, &[]).expect("bytes");
    let text = String::from_utf8_lossy(&bytes).to_string();
    assert!(text.contains("thermo-digits-unet/1"));
    // a file claiming another format: rewrite the header string in place (same length)
    let mut bad = bytes.clone();
    let pos = bad
        .windows(20)
        .position(|w| w == b"thermo-digits-unet/1")
        .expect("format string");
    bad[pos..pos + 20].copy_from_slice(b"thermo-digits-unet/9");
    let e = err_of(&bad);
    assert!(e.contains("<metadata>") && e.contains("format"), "{e}");
}
