//! The imaging readers against the Python side, on real files shipped by PyPI packages (nibabel,
//! nilearn, pydicom test data) and files generated with nibabel and pydicom.
//!
//! Expected values come from `tests/imaging_reference.py` (run once per test process): nibabel
//! for NIfTI voxels, affines, axis codes and reorientation; pydicom for DICOM pixels and tags;
//! the PyPI reference package (`.peers/radiobject-0.1.1`, when installed) for the exact obs and
//! metadata strings.

mod imaging_support;

use std::path::Path;
use std::time::Instant;

use imaging_support::{affine_of, assert_affine_close, assert_voxels, expected, volume_values};
use radiobject_core::Error;
use radiobject_core::imaging::{
    Confidence, ImageVolume, ObsValue, OrientationSource, Target, axcodes, file_sha256, format, infer_series_type,
    read_dicom_series, read_nifti, reorient,
};
use serde_json::Value;

fn path_of(case: &Value) -> &Path {
    Path::new(case["path"].as_str().expect("path"))
}

fn obs_str<'a>(img: &'a ImageVolume, key: &str) -> &'a str {
    match img.obs_value(key) {
        Some(ObsValue::Str(s)) => s,
        other => panic!("obs {key}: expected a string, got {other:?}"),
    }
}

fn obs_i32(img: &ImageVolume, key: &str) -> i32 {
    match img.obs_value(key) {
        Some(ObsValue::Int32(v)) => *v,
        other => panic!("obs {key}: expected an int32, got {other:?}"),
    }
}

fn obs_f64(img: &ImageVolume, key: &str) -> f64 {
    match img.obs_value(key) {
        Some(ObsValue::Float64(v)) => *v,
        other => panic!("obs {key}: expected a float64, got {other:?}"),
    }
}

fn same_f64(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

const NIFTI_OBS: [&str; 15] = [
    "series_type",
    "voxel_spacing",
    "dimensions",
    "datatype",
    "bitpix",
    "scl_slope",
    "scl_inter",
    "xyzt_units",
    "spatial_units",
    "qform_code",
    "sform_code",
    "axcodes",
    "affine_json",
    "orientation_source",
    "source_path",
];

const DICOM_OBS: [&str; 13] = [
    "voxel_spacing",
    "dimensions",
    "modality",
    "series_description",
    "kvp",
    "exposure",
    "repetition_time",
    "echo_time",
    "magnetic_field_strength",
    "axcodes",
    "affine_json",
    "orientation_source",
    "source_path",
];

#[test]
fn nifti_voxels_affine_and_header_match_nibabel() {
    let exp = expected();
    let cases = exp.cases("nifti");
    assert!(cases.len() >= 35, "expected every NIfTI case, got {}", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let img = read_nifti(path_of(case), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.dtype().to_string(), case["expected_dtype"].as_str().unwrap(), "{name}: dtype");
        assert_voxels(name, &img.data, &exp.array(&case["data"]));
        let want = affine_of(&case["affine"]);
        assert_affine_close(name, &img.affine, &want, 1e-6);
        assert_eq!(axcodes(&img.affine), case["axcodes"].as_str().unwrap(), "{name}: axcodes");
        assert_eq!(img.orientation.axcodes, case["axcodes"].as_str().unwrap(), "{name}");
        assert!(img.original_affine.is_none(), "{name}: not reoriented");

        // Obs columns: names and order exactly as the reference, values from the header.
        let names: Vec<&str> = img.obs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, NIFTI_OBS, "{name}: obs columns");
        assert_eq!(obs_str(&img, "voxel_spacing"), case["voxel_spacing_str"].as_str().unwrap(), "{name}");
        assert_eq!(obs_str(&img, "dimensions"), case["dimensions_str"].as_str().unwrap(), "{name}");
        assert_eq!(obs_i32(&img, "datatype"), case["datatype"].as_i64().unwrap() as i32, "{name}");
        assert_eq!(obs_i32(&img, "bitpix"), case["bitpix"].as_i64().unwrap() as i32, "{name}");
        assert_eq!(obs_i32(&img, "sform_code"), case["sform_code"].as_i64().unwrap() as i32, "{name}");
        assert_eq!(obs_i32(&img, "qform_code"), case["qform_code"].as_i64().unwrap() as i32, "{name}");
        assert_eq!(obs_i32(&img, "xyzt_units"), case["xyzt_units"].as_i64().unwrap() as i32, "{name}");
        assert!(same_f64(obs_f64(&img, "scl_slope"), case["scl_slope"].as_f64().unwrap_or(f64::NAN)), "{name}");
        assert!(same_f64(obs_f64(&img, "scl_inter"), case["scl_inter"].as_f64().unwrap_or(f64::NAN)), "{name}");
        assert_eq!(obs_str(&img, "axcodes"), case["axcodes"].as_str().unwrap(), "{name}");
        assert_eq!(obs_str(&img, "affine_json"), case["affine_json"].as_str().unwrap(), "{name}: affine_json");
        assert_eq!(obs_str(&img, "source_path"), case["path"].as_str().unwrap(), "{name}");
        assert_eq!(img.source_path, case["path"].as_str().unwrap());
        assert_eq!(img.metadata_value("orientation_affine"), Some(case["affine_json"].as_str().unwrap()), "{name}");
    }
}

#[test]
fn nifti_obs_and_metadata_match_the_reference_package() {
    let exp = expected();
    if !exp.has_reference() {
        eprintln!("SKIPPED: the PyPI reference package is not installed in .peers/ (run scripts/setup.sh)");
        return;
    }
    for case in exp.cases("nifti") {
        let name = case["name"].as_str().unwrap();
        let img = read_nifti(path_of(case), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ref_obs = case["ref_obs"].as_object().expect("ref_obs");
        for (key, value) in &img.obs {
            let want = &ref_obs[key.as_str()];
            match key.as_str() {
                // The reference reads these after nibabel has reset them (always 1.0 / 0.0);
                // ours are the file's header values (checked against nibabel above).
                "scl_slope" | "scl_inter" => continue,
                // PyPI 0.1.1 records (x, y, z) only; the reference head adds t when > 1 (§1.5).
                "dimensions" if case["data"]["shape"].as_array().unwrap().len() == 4 => continue,
                _ => {}
            }
            match value {
                ObsValue::Str(s) => assert_eq!(s, want.as_str().unwrap(), "{name}: obs {key}"),
                ObsValue::Int32(v) => assert_eq!(i64::from(*v), want.as_i64().unwrap(), "{name}: obs {key}"),
                ObsValue::Float64(v) => assert!(same_f64(*v, want.as_f64().unwrap()), "{name}: obs {key}"),
            }
        }
        // Same keys and values (the manifest's JSON object does not keep the reference's order;
        // ours is checked in `nifti_metadata_keys_in_reference_order`).
        let mut ref_meta: Vec<(String, String)> = case["ref_metadata"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let mut ours = img.volume_metadata.clone();
        ref_meta.sort();
        ours.sort();
        assert_eq!(ours, ref_meta, "{name}: volume metadata");
    }
}

#[test]
fn nifti_metadata_keys_in_reference_order() {
    let exp = expected();
    let img = read_nifti(path_of(exp.case("anatomical")), Some(Target::Ras)).unwrap();
    let keys: Vec<&str> = img.volume_metadata.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "orientation_axcodes",
            "orientation_affine",
            "orientation_source",
            "orientation_confidence",
            "original_affine",
            "nifti_sform_code",
            "nifti_qform_code",
            "nifti_scl_slope",
            "nifti_scl_inter",
            "nifti_xyzt_units",
        ]
    );
}

#[test]
fn nifti_scaling_keeps_integers_where_it_can() {
    let exp = expected();
    let dtype_of = |name: &str| {
        let img = read_nifti(path_of(exp.case(name)), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        img.dtype().to_string()
    };
    assert_eq!(dtype_of("scale_int16_identity"), "int16");
    assert_eq!(dtype_of("scale_uint16_ct"), "int16", "uint16 CT with intercept -1024 gives int16 HU");
    assert_eq!(dtype_of("scale_int16_half"), "float32");
    assert_eq!(dtype_of("scale_int16_to_int32"), "int32");
    assert_eq!(dtype_of("scale_slope_zero"), "int16", "slope 0 means no scaling");
    assert_eq!(dtype_of("scale_slope_nan"), "int16", "slope NaN means no scaling");
    assert_eq!(dtype_of("scale_int32_fraction"), "float64");
    assert_eq!(dtype_of("scale_float32"), "float32");
    assert_eq!(dtype_of("scale_uint8_int"), "int16");
    assert_eq!(dtype_of("functional"), "float32", "nibabel gives float64; we keep float32");
    // The obs record the header's scaling; the stored data is already scaled.
    let img = read_nifti(path_of(exp.case("scale_uint16_ct")), None).unwrap();
    assert_eq!(obs_f64(&img, "scl_inter"), -1024.0);
    assert_eq!(img.metadata_value("nifti_scl_slope"), Some("1.0"));
    assert_eq!(img.metadata_value("nifti_scl_inter"), Some("0.0"));
    let (_, _, values) = volume_values(&img.data);
    assert!(values.iter().any(|v| *v < 0.0), "HU values below zero");
}

#[test]
fn nifti_reorient_to_ras_matches_as_closest_canonical() {
    let exp = expected();
    for case in exp.cases("nifti") {
        let name = case["name"].as_str().unwrap();
        let img = read_nifti(path_of(case), Some(Target::Ras)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.orientation.axcodes, "RAS", "{name}");
        assert!(img.orientation.is_canonical);
        assert_affine_close(name, &img.affine, &affine_of(&case["ras_affine"]), 1e-6);
        let reoriented = !case["ras_data"].is_null();
        if reoriented {
            assert_voxels(name, &img.data, &exp.array(&case["ras_data"]));
            let original = img.original_affine.expect("original affine");
            assert_affine_close(name, &original, &affine_of(&case["affine"]), 1e-6);
            assert_eq!(img.metadata_value("original_affine"), Some(format::affine_json(&original).as_str()));
            // Obs describe the source file, not the reoriented array.
            assert_eq!(obs_str(&img, "axcodes"), case["axcodes"].as_str().unwrap());
        } else {
            assert_voxels(name, &img.data, &exp.array(&case["data"]));
            assert!(img.original_affine.is_none(), "{name}: already RAS");
            assert!(img.metadata_value("original_affine").is_none());
        }
        assert_eq!(img.metadata_value("orientation_axcodes"), Some("RAS"));
    }
}

#[test]
fn nifti_reorient_lps_matches_the_reference_and_round_trips() {
    let exp = expected();
    for name in ["anatomical", "gen_qform_only"] {
        let case = exp.case(name);
        let img = read_nifti(path_of(case), None).unwrap();
        let (lps, lps_affine) = reorient(img.data.clone(), img.affine, Target::Lps);
        assert_eq!(axcodes(&lps_affine), "LPS", "{name}");
        if exp.has_reference() {
            assert_voxels(name, &lps, &exp.array(&case["ref_lps_data"]));
            assert_affine_close(name, &lps_affine, &affine_of(&case["ref_lps_affine"]), 1e-6);
        }
        let (ras, ras_affine) = reorient(lps, lps_affine, Target::Ras);
        let direct = read_nifti(path_of(case), Some(Target::Ras)).unwrap();
        assert_eq!(ras, direct.data, "{name}: LPS -> RAS equals reading as RAS");
        assert_affine_close(name, &ras_affine, &direct.affine, 1e-9);
        let (las, las_affine) = reorient(ras.clone(), ras_affine, Target::Las);
        assert_eq!(axcodes(&las_affine), "LAS");
        let (back, back_affine) = reorient(las, las_affine, Target::Ras);
        assert_eq!(back, ras, "{name}: RAS -> LAS -> RAS round trip");
        assert_affine_close(name, &back_affine, &ras_affine, 1e-9);
        // Reading straight to LPS gives the same as reorienting.
        let read_lps = read_nifti(path_of(case), Some(Target::Lps)).unwrap();
        assert_eq!(read_lps.orientation.axcodes, "LPS");
        assert_eq!(read_lps.metadata_value("orientation_axcodes"), Some("LPS"));
    }
}

#[test]
fn nifti_orientation_sources() {
    let exp = expected();
    let img = read_nifti(path_of(exp.case("gen_no_orientation")), None).unwrap();
    assert_eq!(img.orientation.source, OrientationSource::Identity);
    assert_eq!(img.orientation.confidence, Confidence::Unknown);
    assert_eq!(obs_str(&img, "orientation_source"), "identity");
    let img = read_nifti(path_of(exp.case("gen_qform_only")), None).unwrap();
    assert_eq!(img.orientation.source, OrientationSource::NiftiQform);
    assert_eq!(img.metadata_value("orientation_confidence"), Some("header"));
    // An identity sform: metadata says "identity" (the reference's check), obs say where it came from.
    let img = read_nifti(path_of(exp.case("gen_identity_sform")), None).unwrap();
    assert_eq!(img.metadata_value("orientation_source"), Some("identity"));
    assert_eq!(obs_str(&img, "orientation_source"), "nifti_sform");
    let img = read_nifti(path_of(exp.case("anatomical")), None).unwrap();
    assert_eq!(img.metadata_value("orientation_source"), Some("nifti_sform"));
    assert_eq!(img.metadata_value("nifti_xyzt_units"), Some(obs_i32(&img, "xyzt_units").to_string().as_str()));
}

fn err_path(exp: &imaging_support::Expected, group: &str, key: &str) -> String {
    exp.manifest[group][key].as_str().unwrap_or_else(|| panic!("no {group}.{key}")).to_owned()
}

fn expect_invalid(result: radiobject_core::Result<ImageVolume>, path: &str, words: &[&str]) {
    let name = Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
    match result {
        Err(Error::Invalid(msg)) => {
            assert!(msg.contains(&name), "message should name {name}: {msg}");
            for w in words {
                assert!(msg.to_lowercase().contains(&w.to_lowercase()), "message should say {w:?}: {msg}");
            }
        }
        other => panic!("{path}: expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn nifti_errors_name_the_file_and_the_reason() {
    let exp = expected();
    let p = |k: &str| err_path(exp, "nifti_errors", k);
    expect_invalid(read_nifti(p("truncated").as_ref(), None), &p("truncated"), &["truncated"]);
    expect_invalid(read_nifti(p("truncated_gz").as_ref(), None), &p("truncated_gz"), &[]);
    expect_invalid(read_nifti(p("corrupt_gz").as_ref(), None), &p("corrupt_gz"), &[]);
    expect_invalid(read_nifti(p("bad_magic").as_ref(), None), &p("bad_magic"), &["magic"]);
    expect_invalid(read_nifti(p("not_nifti").as_ref(), None), &p("not_nifti"), &["not a NIfTI"]);
    expect_invalid(read_nifti(p("short_header").as_ref(), None), &p("short_header"), &["truncated"]);
    for key in ["two_d", "five_d", "cifti"] {
        match read_nifti(p(key).as_ref(), None) {
            Err(Error::Shape { message }) => {
                assert!(message.contains("3D") && message.contains(".nii"), "{key}: {message}");
            }
            other => panic!("{key}: expected a shape error, got {other:?}"),
        }
    }
    for key in ["complex", "rgb"] {
        match read_nifti(p(key).as_ref(), None) {
            Err(Error::UnsupportedDtype(msg)) => assert!(msg.contains("err_"), "{key}: {msg}"),
            other => panic!("{key}: expected an unsupported dtype, got {other:?}"),
        }
    }
    match read_nifti(Path::new("/definitely/not/here.nii.gz"), None) {
        Err(Error::NotFound { uri, expected }) => {
            assert!(uri.ends_with("here.nii.gz"));
            assert_eq!(expected, "NIfTI file");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn dicom_series_match_pydicom() {
    let exp = expected();
    let cases = exp.cases("dicom");
    assert!(cases.len() >= 12);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let img = read_dicom_series(path_of(case), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.dtype().to_string(), case["expected_dtype"].as_str().unwrap(), "{name}: dtype");
        assert_voxels(name, &img.data, &exp.array(&case["data"]));
        assert_affine_close(name, &img.affine, &affine_of(&case["affine"]), 1e-6);
        assert_eq!(img.orientation.axcodes, case["axcodes"].as_str().unwrap(), "{name}");
        assert_eq!(img.orientation.source.as_str(), case["source"].as_str().unwrap(), "{name}");
        // Voxel (0, 0, 0) is the first slice's ImagePositionPatient in RAS; the last slice's too.
        if let Some(first) = case["first_ipp_ras"].as_array() {
            for (i, v) in first.iter().enumerate() {
                assert!((img.affine[i][3] - v.as_f64().unwrap()).abs() < 1e-4, "{name}: origin");
            }
            // (Unless the spacing is uneven: the affine then uses the median step.)
            let nz = (img.data.shape()[2] - 1) as f64;
            let last = case["last_ipp_ras"].as_array().unwrap();
            for (i, v) in last.iter().enumerate().filter(|_| case["uneven"].is_null()) {
                let w = img.affine[i][2] * nz + img.affine[i][3];
                assert!((w - v.as_f64().unwrap()).abs() < 1e-3, "{name}: last slice at {w}, expected {v}");
            }
        }
        let names: Vec<&str> = img.obs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, DICOM_OBS, "{name}: obs columns");
        assert_eq!(obs_str(&img, "voxel_spacing"), case["voxel_spacing_str"].as_str().unwrap(), "{name}");
        assert_eq!(obs_str(&img, "dimensions"), case["dimensions_str"].as_str().unwrap(), "{name}");
        assert_eq!(obs_str(&img, "modality"), case["modality"].as_str().unwrap(), "{name}");
        assert_eq!(obs_str(&img, "series_description"), case["series_description"].as_str().unwrap(), "{name}");
        for key in ["kvp", "exposure", "repetition_time", "echo_time", "magnetic_field_strength"] {
            let want = case[key].as_f64().unwrap_or(f64::NAN);
            assert!(same_f64(obs_f64(&img, key), want), "{name}: {key} {} != {want}", obs_f64(&img, key));
        }
        assert_eq!(obs_str(&img, "affine_json"), case["affine_json"].as_str().unwrap(), "{name}: affine_json");
        assert_eq!(img.metadata_value("orientation_affine"), Some(case["affine_json"].as_str().unwrap()));
        assert_eq!(obs_str(&img, "source_path"), case["path"].as_str().unwrap());
        let keys: Vec<&str> = img.volume_metadata.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["orientation_axcodes", "orientation_affine", "orientation_source", "orientation_confidence"]);
    }
}

#[test]
fn dicom_obs_match_the_reference_package() {
    let exp = expected();
    if !exp.has_reference() {
        eprintln!("SKIPPED: the PyPI reference package is not installed in .peers/ (run scripts/setup.sh)");
        return;
    }
    let mut compared = 0;
    for case in exp.cases("dicom") {
        let Some(ref_obs) = case["ref_obs"].as_object() else { continue };
        let name = case["name"].as_str().unwrap();
        let img = read_dicom_series(path_of(case), None).unwrap();
        for key in ["modality", "series_description", "axcodes", "orientation_source", "source_path"] {
            assert_eq!(obs_str(&img, key), ref_obs[key].as_str().unwrap(), "{name}: {key}");
        }
        for key in ["kvp", "exposure", "repetition_time", "echo_time", "magnetic_field_strength"] {
            let want = ref_obs[key].as_f64().unwrap_or(f64::NAN);
            assert!(same_f64(obs_f64(&img, key), want), "{name}: {key}");
        }
        // Where the reference's geometry agrees (slice spacing = SliceThickness), the JSON is
        // identical byte for byte.
        let ref_json = ref_obs["affine_json"].as_str().unwrap();
        let ref_affine: Value = serde_json::from_str(ref_json).unwrap();
        let same = (0..4).all(|r| (0..4).all(|c| (ref_affine[r][c].as_f64().unwrap() - img.affine[r][c]).abs() < 1e-9));
        if same {
            assert_eq!(obs_str(&img, "affine_json"), ref_json, "{name}");
        }
        compared += 1;
    }
    assert!(compared >= 5, "compared {compared} series with the reference");
}

#[test]
fn dicom_slices_are_ordered_by_position_not_instance_number() {
    let exp = expected();
    let case = exp.case("shuffled_axial");
    let img = read_dicom_series(path_of(case), None).unwrap();
    let (_, shape, values) = volume_values(&img.data);
    assert_eq!(shape, [128, 128, 6]);
    // Slice k was written with raw + 7k and IPP z = base + 2.5k, InstanceNumber n-k, names shuffled.
    let plane = 128 * 128;
    for z in 1..6 {
        assert_eq!(values[z * plane] - values[(z - 1) * plane], 7.0, "slice {z} out of order");
    }
    assert!((img.affine[2][2] - 2.5).abs() < 1e-9, "slice spacing from IPP, not SliceThickness (5.0)");
    assert_eq!(obs_str(&img, "voxel_spacing"), "(0.661468, 0.661468, 2.5)");
    // pydicom CT_small: uint16/int16 with intercept -1024 -> int16 HU.
    assert_eq!(img.dtype().to_string(), "int16");
    let ct5n = read_dicom_series(path_of(exp.case("ct5n_series")), None).unwrap();
    assert!(ct5n.affine[2][2] > 0.0, "ascending along the normal");
    let ct2 = read_dicom_series(path_of(exp.case("ct2_series")), None).unwrap();
    assert!(ct2.warnings.iter().any(|w| w.contains("not uniform")), "{:?}", ct2.warnings);
    let noisy = read_dicom_series(path_of(exp.case("with_extra_files")), None).unwrap();
    assert!(noisy.warnings.iter().any(|w| w.contains("README.txt")), "{:?}", noisy.warnings);
}

#[test]
fn dicom_reorient_to_ras() {
    let exp = expected();
    for name in ["shuffled_oblique", "enhanced_multiframe", "ct5n_series"] {
        let case = exp.case(name);
        let plain = read_dicom_series(path_of(case), None).unwrap();
        let img = read_dicom_series(path_of(case), Some(Target::Ras)).unwrap();
        assert_eq!(img.orientation.axcodes, "RAS", "{name}");
        assert_eq!(img.orientation.axcodes, case["ras_axcodes"].as_str().unwrap());
        assert_eq!(img.original_affine, Some(plain.affine));
        assert_eq!(img.orientation.source, OrientationSource::DicomIop, "reorientation keeps the source");
        let (back, _) = reorient(img.data.clone(), img.affine, Target::Lps);
        let (again, _) = reorient(back, reorient(img.data.clone(), img.affine, Target::Lps).1, Target::Ras);
        assert_eq!(again, img.data, "{name}: RAS -> LPS -> RAS");
    }
}

#[test]
fn dicom_errors_name_the_file_and_the_reason() {
    let exp = expected();
    let p = |k: &str| err_path(exp, "dicom_errors", k);
    let read = |k: &str| read_dicom_series(p(k).as_ref(), None);
    expect_invalid(read("empty_dir"), &p("empty_dir"), &["no DICOM files"]);
    expect_invalid(read("no_dicom"), &p("no_dicom"), &["no DICOM files", "skipped"]);
    expect_invalid(read("mixed_uids"), &p("mixed_uids"), &["mixed series", "SeriesInstanceUID"]);
    expect_invalid(read("mixed_uids_and_orientations"), &p("mixed_uids_and_orientations"), &["mixed series"]);
    for k in ["mixed_orientations", "mixed_orientations_ct"] {
        match read(k) {
            Err(Error::Invalid(msg)) => {
                assert!(msg.contains("mixed series") && msg.contains("ImageOrientationPatient"), "{k}: {msg}");
            }
            other => panic!("{k}: expected Invalid, got {other:?}"),
        }
    }
    expect_invalid(read("mixed_size"), &p("mixed_size"), &["mixed series", "rows"]);
    expect_invalid(read("duplicate_positions"), &p("duplicate_positions"), &["same position"]);
    expect_invalid(read("truncated"), &p("truncated"), &[]);
    match read("truncated_in_series") {
        Err(Error::Invalid(msg)) => assert!(msg.contains("truncated_series"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    for (key, file) in [("unsupported_codec", "693_J2KI.dcm"), ("unsupported_rle_32bit", "rtdose_rle.dcm")] {
        match read(key) {
            Err(Error::Invalid(msg)) => assert!(msg.contains(file) && msg.contains("decode"), "{msg}"),
            other => panic!("{key}: expected Invalid, got {other:?}"),
        }
    }
    match read("colour") {
        Err(Error::UnsupportedDtype(msg)) => assert!(msg.contains("SC_rgb_small_odd") && msg.contains("colour")),
        other => panic!("expected UnsupportedDtype, got {other:?}"),
    }
    match read("missing") {
        Err(Error::NotFound { uri, .. }) => assert!(uri.ends_with("does_not_exist")),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn sha256_matches_hashlib() {
    let exp = expected();
    for case in exp.cases("nifti").into_iter().take(12) {
        assert_eq!(file_sha256(path_of(case)).unwrap(), case["sha256"].as_str().unwrap());
    }
}

#[test]
fn series_types() {
    let exp = expected();
    let img = read_nifti(path_of(exp.case("bids_named")), None).unwrap();
    assert_eq!(obs_str(&img, "series_type"), "T1w");
    let img = read_nifti(path_of(exp.case("functional")), None).unwrap();
    assert_eq!(obs_str(&img, "series_type"), "bold", "FUNC pattern");
    assert_eq!(infer_series_type(Path::new("BraTS_00001_flair.nii.gz"), None), "FLAIR");
    assert_eq!(infer_series_type(Path::new("case.nii.gz"), Some("T2star map")), "T2star");
}

#[test]
fn large_gzipped_nifti_reads_fast() {
    let exp = expected();
    for name in ["mni152_t1", "big_gz"] {
        let case = exp.case(name);
        let gz_mb = std::fs::metadata(path_of(case)).unwrap().len() as f64 / 1e6;
        let start = Instant::now();
        let img = read_nifti(path_of(case), None).unwrap();
        let elapsed = start.elapsed();
        eprintln!("{name}: {:?} from {gz_mb:.1} MB of gzip read in {elapsed:?}", img.data.shape());
        if name == "big_gz" {
            let (_, shape, values) = volume_values(&img.data);
            assert_eq!(
                shape.iter().map(|d| *d as u64).collect::<Vec<_>>(),
                serde_json::from_value::<Vec<u64>>(case["shape"].clone()).unwrap()
            );
            assert_eq!(values.iter().sum::<f64>(), case["sum"].as_f64().unwrap());
            assert!(gz_mb > 8.0, "the speed check wants a ~10 MB file, got {gz_mb:.1} MB");
        }
        // Debug builds are ~10x slower; CI runs the tests in release.
        if !cfg!(debug_assertions) {
            assert!(elapsed.as_secs_f64() < 1.0, "{name}: {elapsed:?}");
        }
    }
}
