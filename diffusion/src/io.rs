//! Saving and loading a [`Unet`] as safetensors.
//!
//! Tensor names and shapes follow a PyTorch state dict of the same architecture (see
//! `diffusion/README.md`); all tensors are stored as little-endian `F32`. The header metadata
//! holds `format = "thermo-digits-unet/1"` and `config` = the [`UnetConfig`] as JSON. Files
//! without `config` (e.g. exported from PyTorch) are accepted: the sizes are then inferred from
//! the shapes of `enc{l}.weight`, `bottleneck.weight` and `enc0_emb.weight`, and the noise
//! conventions take their default values.

use crate::error::{DiffusionError, Result};
use crate::unet::{Unet, UnetConfig};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "thermo-digits-unet/1";

/// Metadata key of the thermo header entry.
pub const META_KEY: &str = "thermo";

/// Serialize a model to safetensors bytes; `extra` entries go to the `info` object of the
/// `thermo` metadata entry. The same model and `extra` always give the same bytes.
pub fn to_bytes(model: &Unet, extra: &[(String, String)]) -> Result<Vec<u8>> {
    let tensors = model.tensors();
    let shapes = model.config.tensor_shapes();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, data)| data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for (((name, _), (_, shape)), b) in tensors.iter().zip(&shapes).zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape.clone(), b)
            .map_err(|e| DiffusionError::tensor(name, e.to_string()))?;
        views.push((name.clone(), view));
    }
    let cfg = serde_json::to_value(&model.config)
        .map_err(|e| DiffusionError::Invalid(format!("config: {e}")))?;
    let info: serde_json::Map<String, serde_json::Value> = extra
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let header = serde_json::json!({ "format": FORMAT, "config": cfg, "info": info });
    let mut meta = HashMap::new();
    meta.insert(META_KEY.to_string(), header.to_string());
    safetensors::serialize(views, Some(meta))
        .map_err(|e| DiffusionError::SafeTensors(e.to_string()))
}

/// Write a model to a safetensors file.
pub fn save(model: &Unet, path: &Path, extra: &[(String, String)]) -> Result<()> {
    let bytes = to_bytes(model, extra)?;
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| DiffusionError::io(dir, e))?;
        }
    }
    std::fs::write(path, bytes).map_err(|e| DiffusionError::io(path, e))
}

/// The `info` entries of a model file's `thermo` metadata (empty if absent).
pub fn read_info(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| DiffusionError::SafeTensors(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let Some(text) = meta.get(META_KEY) else {
        return Ok(vec![]);
    };
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| DiffusionError::tensor("<metadata>", format!("`{META_KEY}`: {e}")))?;
    Ok(v.get("info")
        .and_then(|i| i.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default())
}

/// Read a model from a safetensors file.
pub fn load(path: &Path) -> Result<Unet> {
    let bytes = std::fs::read(path).map_err(|e| DiffusionError::io(path, e))?;
    from_bytes(&bytes)
}

fn shape_of(st: &SafeTensors, name: &str) -> Result<Vec<usize>> {
    st.tensor(name)
        .map(|t| t.shape().to_vec())
        .map_err(|_| DiffusionError::tensor(name, "missing"))
}

fn dim(shape: &[usize], name: &str, rank: usize, axis: usize) -> Result<usize> {
    if shape.len() != rank {
        return Err(DiffusionError::tensor(
            name,
            format!("expected a rank-{rank} tensor, found shape {shape:?}"),
        ));
    }
    Ok(shape[axis])
}

/// Infer the architecture from tensor shapes (for files without `config` metadata).
fn infer_config(st: &SafeTensors) -> Result<UnetConfig> {
    let mut enc = Vec::new();
    let e0 = shape_of(st, "enc0.weight")?;
    let input = dim(&e0, "enc0.weight", 2, 1)?;
    let mut l = 0;
    while st.names().iter().any(|n| *n == format!("enc{l}.weight")) {
        let name = format!("enc{l}.weight");
        enc.push(dim(&shape_of(st, &name)?, &name, 2, 0)?);
        l += 1;
    }
    let bottleneck = dim(
        &shape_of(st, "bottleneck.weight")?,
        "bottleneck.weight",
        2,
        0,
    )?;
    let emb = dim(&shape_of(st, "enc0_emb.weight")?, "enc0_emb.weight", 2, 1)?;
    Ok(UnetConfig {
        input,
        enc,
        bottleneck,
        emb,
        ..UnetConfig::default()
    })
}

/// Parse a model from safetensors bytes, checking every tensor: present, `F32` (or `F64`,
/// converted), the expected shape, finite values; and no unexpected tensors. Errors name the
/// tensor.
pub fn from_bytes(bytes: &[u8]) -> Result<Unet> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| DiffusionError::SafeTensors(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| DiffusionError::SafeTensors(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let config = match meta.get(META_KEY) {
        Some(text) => {
            let bad = |m: String| DiffusionError::tensor("<metadata>", m);
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| bad(format!("`{META_KEY}`: {e}")))?;
            match v.get("format").and_then(|f| f.as_str()) {
                Some(FORMAT) => {}
                other => return Err(bad(format!("format {other:?} is not `{FORMAT}`"))),
            }
            let c = v
                .get("config")
                .ok_or_else(|| bad(format!("`{META_KEY}` has no `config`")))?;
            serde_json::from_value::<UnetConfig>(c.clone())
                .map_err(|e| bad(format!("config: {e}")))?
        }
        None => infer_config(&st)?,
    };
    config
        .validate()
        .map_err(|e| DiffusionError::tensor("<metadata>", format!("config: {e}")))?;
    let shapes = config.tensor_shapes();
    for n in st.names() {
        if !shapes.iter().any(|(s, _)| s == n) {
            return Err(DiffusionError::tensor(
                n,
                "unexpected tensor for this architecture",
            ));
        }
    }
    let mut model = Unet::zeros(&config);
    {
        let dst = model.tensors_mut();
        for ((name, shape), d) in shapes.iter().zip(dst) {
            let t = st.tensor(name).map_err(|_| {
                DiffusionError::tensor(name, format!("missing (expected shape {shape:?})"))
            })?;
            if t.shape() != shape.as_slice() {
                return Err(DiffusionError::tensor(
                    name,
                    format!("wrong shape {:?}, expected {:?}", t.shape(), shape),
                ));
            }
            let vals = tensor_values(name, &t)?;
            if vals.len() != d.len() {
                return Err(DiffusionError::tensor(
                    name,
                    format!("{} values, expected {}", vals.len(), d.len()),
                ));
            }
            d.copy_from_slice(&vals);
        }
    }
    Ok(model)
}

/// The values of a safetensors tensor as `f32` (F32, or F64 narrowed); errors name the tensor:
/// another dtype, or a non-finite value (with its flat index).
pub fn tensor_values(name: &str, t: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>> {
    let vals: Vec<f32> = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            })
            .collect(),
        other => {
            return Err(DiffusionError::tensor(
                name,
                format!("dtype {other:?} not supported (expected F32)"),
            ))
        }
    };
    if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
        return Err(DiffusionError::tensor(
            name,
            format!("non-finite value {} at flat index {i}", vals[i]),
        ));
    }
    Ok(vals)
}
