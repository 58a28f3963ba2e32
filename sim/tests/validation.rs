//! Bad descriptions: one test per failure class, each checking that the message names the field
//! (and the file, when loaded from one).

use thermo_sim::example::{random_substrate, ExampleSpec};
use thermo_sim::model::{PerUnit, SubstrateConfig};
use thermo_sim::qformat::QFormat;
use thermo_sim::{Error, Substrate};

fn base() -> SubstrateConfig {
    random_substrate(&ExampleSpec {
        units: 30,
        modules: 3,
        rank: 2,
        seed: 5,
        ..Default::default()
    })
}

fn invalid(cfg: &SubstrateConfig) -> (String, String) {
    match Substrate::from_config(cfg) {
        Ok(_) => panic!("configuration was accepted"),
        Err(e) => (e.field().unwrap_or("").to_string(), e.to_string()),
    }
}

#[test]
fn base_configuration_is_valid() {
    let s = Substrate::from_config(&base()).expect("base validates");
    assert_eq!(s.units(), 30);
    assert!(
        s.lambda_min > 0.0 && s.eta * s.lambda_max < 2.0,
        "{} {}",
        s.lambda_min,
        s.eta
    );
}

#[test]
fn asymmetric_coupling_is_rejected() {
    let mut c = base();
    // Change one direction only.
    c.couplings[0].2 += 0.01;
    let (field, msg) = invalid(&c);
    assert!(field.starts_with("couplings["), "{field}");
    assert!(msg.contains("not symmetric"), "{msg}");
    // A missing partner.
    let mut c = base();
    c.couplings.push((0, 29, 0.1));
    let (field, msg) = invalid(&c);
    assert_eq!(field, format!("couplings[{}]", c.couplings.len() - 1));
    assert!(msg.contains("no (29, 0) entry"), "{msg}");
}

#[test]
fn not_positive_definite_is_rejected() {
    let mut c = base();
    for m in &mut c.modules {
        m.stiffness = PerUnit::Uniform(0.05);
    }
    let (field, msg) = invalid(&c);
    assert_eq!(field, "couplings");
    assert!(msg.contains("not positive definite"), "{msg}");
    assert!(msg.contains("smallest eigenvalue"), "{msg}");
}

#[test]
fn non_positive_stiffness_names_the_module() {
    for bad in [-1.0, 0.0] {
        let mut c = base();
        c.modules[1].stiffness = PerUnit::Uniform(bad);
        let (field, msg) = invalid(&c);
        assert_eq!(field, "modules[1].stiffness", "{msg}");
        assert!(msg.contains("must be > 0"), "{msg}");
    }
    let mut c = base();
    let n = c.modules[2].size;
    let mut each = vec![2.0; n];
    each[3] = -0.5;
    c.modules[2].stiffness = PerUnit::Each(each);
    let (field, msg) = invalid(&c);
    assert_eq!(field, "modules[2].stiffness");
    assert!(msg.contains("unit 3"), "{msg}");
}

#[test]
fn eta_beyond_stability_is_rejected() {
    let mut c = base();
    let s = Substrate::from_config(&c).unwrap();
    let (_, lmax) = s.spectrum();
    c.eta = 2.0 / lmax * 1.01;
    // Keep the self coefficients representable so the spectrum check is the one that fires.
    c.formats.coupling = QFormat::new(16, 12);
    let (field, msg) = invalid(&c);
    assert_eq!(field, "eta");
    assert!(msg.contains("2/lambda_max"), "{msg}");
}

#[test]
fn nan_and_inf_are_rejected_with_their_index() {
    let mut c = base();
    if let PerUnit::Each(b) = &mut c.modules[1].bias {
        b[3] = f64::NAN;
    }
    let (field, msg) = invalid(&c);
    assert_eq!(field, "modules[1].bias[3]");
    assert!(msg.contains("not finite"), "{msg}");

    let mut c = base();
    c.couplings[4].2 = f64::INFINITY;
    let (field, _) = invalid(&c);
    assert_eq!(field, "couplings[4]");

    let mut c = base();
    c.buses[0].v[1][2] = f64::NAN;
    let (field, _) = invalid(&c);
    assert_eq!(field, "buses[0].v[1][2]");

    let mut c = base();
    c.temperature = f64::NAN;
    assert_eq!(invalid(&c).0, "temperature");
}

#[test]
fn shape_mismatches_are_rejected() {
    let mut c = base();
    c.modules[0].bias = PerUnit::Each(vec![0.0; 3]);
    let (field, msg) = invalid(&c);
    assert_eq!(field, "modules[0].bias");
    assert!(
        msg.contains("has 3 values but the module has 10 units"),
        "{msg}"
    );

    let mut c = base();
    c.buses[0].u.pop();
    let (field, msg) = invalid(&c);
    assert_eq!(field, "buses[0].u");
    assert!(msg.contains("rank 2"), "{msg}");

    let mut c = base();
    c.buses[0].v[0].push(0.0);
    assert_eq!(invalid(&c).0, "buses[0].v[0]");

    let mut c = base();
    c.couplings.push((3, 30, 0.1));
    c.couplings.push((30, 3, 0.1));
    let (field, msg) = invalid(&c);
    assert!(field.starts_with("couplings["));
    assert!(msg.contains("out of range"), "{msg}");

    let mut c = base();
    c.buses[0].decoder = "nowhere".into();
    let (field, msg) = invalid(&c);
    assert_eq!(field, "buses[0].decoder");
    assert!(msg.contains("nowhere"), "{msg}");

    let mut c = base();
    c.lanes = 31;
    assert_eq!(invalid(&c).0, "lanes");
}

#[test]
fn values_outside_their_q_format_are_counted() {
    // Biases whose eta*b exceed the accumulator format's range.
    let mut c = base();
    c.formats.state = QFormat::new(16, 14);
    c.formats.coupling = QFormat::new(16, 15); // accumulator frac 29: range +-4
    c.formats.noise_gain = QFormat::new(16, 12);
    // Self coefficients need |1 - eta a| < 1 in Q0.15: fine. Make three biases too large.
    if let PerUnit::Each(b) = &mut c.modules[2].bias {
        b[0] = 100.0;
        b[5] = -300.0;
        b[7] = 90.0;
    }
    let (field, msg) = invalid(&c);
    assert_eq!(field, "modules[2].bias[0]");
    assert!(msg.contains("3 of 10 values"), "{msg}");
    assert!(msg.contains("largest magnitude"), "{msg}");

    // Couplings that do not fit a narrow coupling format.
    let mut c = base();
    c.formats.coupling = QFormat::new(8, 9); // range -0.25 .. 0.248
    let (field, msg) = invalid(&c);
    assert!(
        field.starts_with("modules[0].stiffness") || field.starts_with("couplings"),
        "{field}: {msg}"
    );
    assert!(msg.contains("formats.coupling"), "{msg}");

    // A format wider than the multiplier.
    let mut c = base();
    c.formats.state = QFormat::new(18, 10);
    let (field, msg) = invalid(&c);
    assert_eq!(field, "formats.state");
    assert!(msg.contains("16x16"), "{msg}");

    // Noise amplitude beyond its format.
    let mut c = base();
    c.temperature = 1e4;
    let (field, msg) = invalid(&c);
    assert_eq!(field, "temperature");
    assert!(msg.contains("noise amplitude"), "{msg}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("thermo-validation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Malformed TOML: the parser's line is reported.
    let p = dir.join("broken.toml");
    std::fs::write(&p, "name = \"x\"\ntemperature = [oops\n").unwrap();
    let e = Substrate::from_file(&p).unwrap_err();
    assert!(matches!(e, Error::Parse { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("broken.toml") && msg.contains("line 2"),
        "{msg}"
    );
    // A semantic error in a JSON file carries the file and the field.
    let mut c = base();
    c.couplings[0].2 += 1.0;
    let p = dir.join("asym.json");
    c.save(&p).unwrap();
    let msg = Substrate::from_file(&p).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}: couplings[", p.display())),
        "{msg}"
    );
    // Unknown fields are not silently ignored.
    let p = dir.join("typo.toml");
    let text = toml::to_string(&base())
        .unwrap()
        .replace("temperature =", "temprature =");
    std::fs::write(&p, text).unwrap();
    let msg = Substrate::from_file(&p).unwrap_err().to_string();
    assert!(msg.contains("temprature"), "{msg}");
    // Missing file.
    let msg = Substrate::from_file(&dir.join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("absent.toml"), "{msg}");
}

/// A missing top-level setting in a TOML file is named, not quoted as line 1 column 1.
#[test]
fn missing_top_level_toml_field_is_named() {
    let text = std::fs::read_to_string(thermo_sim::example::shipped_path()).unwrap();
    let cut: String = text
        .lines()
        .filter(|l| !l.starts_with("temperature"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = std::env::temp_dir().join(format!("thermo-missing-{}.toml", std::process::id()));
    std::fs::write(&p, cut).unwrap();
    let e = Substrate::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("missing field `temperature`"), "{e}");
    assert!(
        e.contains("top level") && !e.contains("line 1, column 1"),
        "{e}"
    );
    assert!(e.contains(p.to_str().unwrap()), "{e}");
    let _ = std::fs::remove_file(&p);
}
