//! Text formats shared with the Python reference: Python's `repr` of floats and tuples, and
//! `json.dumps` of a 4×4 affine. Metadata and obs strings must match byte for byte so that either
//! library reads the other's datasets.

use std::fmt::Write as _;

/// `repr(x)` of a Python float: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent lies in `-4 < e <= 16`, else scientific with a signed, two-digit (at least)
/// exponent. `1.0`, `0.0001`, `1e-05`, `1e+16`, `-0.0`, `nan`, `inf`.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7", "1e16", "0e0".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    // Position of the decimal point relative to the digit string: value = 0.DIGITS × 10^decpt.
    let decpt = exp + 1;
    let n = digits.len() as i32;
    let mut out = String::with_capacity(digits.len() + 8);
    out.push_str(sign);
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    out
}

/// A float as Python's `json.dumps` writes it (`repr`, but `NaN`, `Infinity`, `-Infinity`).
pub fn json_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        py_float_repr(x)
    }
}

/// `str(tuple)` of Python floats: `(1.0, 1.0, 2.0)`.
pub fn py_float_tuple(values: &[f64]) -> String {
    py_tuple(values.iter().map(|v| py_float_repr(*v)))
}

/// `str(tuple)` of Python ints: `(8, 8, 4)`.
pub fn py_int_tuple<T: std::fmt::Display>(values: &[T]) -> String {
    py_tuple(values.iter().map(ToString::to_string))
}

fn py_tuple(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.len() {
        1 => format!("({},)", items[0]),
        _ => format!("({})", items.join(", ")),
    }
}

/// `json.dumps` of a 4×4 affine as a list of lists of Python floats:
/// `[[1.0, 0.0, 0.0, -4.0], [0.0, 1.0, 0.0, 0.0], ...]`.
pub fn affine_json(affine: &[[f64; 4]; 4]) -> String {
    let rows: Vec<String> = affine
        .iter()
        .map(|row| format!("[{}]", row.iter().map(|v| json_float(*v)).collect::<Vec<_>>().join(", ")))
        .collect();
    format!("[{}]", rows.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_python_repr() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-4.0, "-4.0"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (123.456, "123.456"),
            (-1024.0, "-1024.0"),
            (f64::from(0.661_468_f32), "0.6614680290222168"),
            (f64::from(3100.7617_f32), "3100.76171875"),
            (1e300, "1e+300"),
            (-2.5e-300, "-2.5e-300"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(*x), *want, "{x:e}");
        }
    }

    #[test]
    fn tuples_and_json() {
        assert_eq!(py_float_tuple(&[1.0, 1.0, 2.0]), "(1.0, 1.0, 2.0)");
        assert_eq!(py_int_tuple(&[8, 8, 4]), "(8, 8, 4)");
        assert_eq!(py_int_tuple(&[3]), "(3,)");
        let mut a = [[0.0; 4]; 4];
        for (i, row) in a.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        a[0][3] = -4.0;
        a[1][1] = f64::NAN;
        assert_eq!(
            affine_json(&a),
            "[[1.0, 0.0, 0.0, -4.0], [0.0, NaN, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]"
        );
    }
}
