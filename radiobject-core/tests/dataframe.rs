//! Dataframes (obs / obs_meta): round trips with nulls, non-ASCII text, updates, new columns.

mod common;

use common::{TempUri, ctx_with};
use radiobject_core::Datatype;
use radiobject_core::dataframe::{Column, ColumnType, Dataframe, Frame, Values};

fn frame(ids: &[(&str, &str)], ages: &[Option<i64>], names: &[Option<&str>]) -> Frame {
    Frame {
        columns: vec![
            Column::new("obs_subject_id", Values::Str(ids.iter().map(|p| p.0.to_owned()).collect())),
            Column::new("obs_id", Values::Str(ids.iter().map(|p| p.1.to_owned()).collect())),
            Column {
                name: "age".into(),
                values: Values::int64(ages.iter().map(|a| a.unwrap_or(0)).collect()),
                valid: Some(ages.iter().map(Option::is_some).collect()),
            },
            Column {
                name: "name".into(),
                values: Values::Str(names.iter().map(|n| n.unwrap_or("").to_owned()).collect()),
                valid: Some(names.iter().map(Option::is_some).collect()),
            },
        ],
    }
}

#[test]
fn rows_round_trip_sorted_with_nulls_and_unicode() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("obs");
    let mut df = Dataframe::create(
        &ctx,
        &uri,
        &["obs_subject_id", "obs_id"],
        &[("age".into(), ColumnType { datatype: Datatype::Int64, var: false }), ("name".into(), ColumnType::STR)],
    )
    .unwrap();
    df.write(&frame(
        &[("sub-b", "sub-b_T1w"), ("Zoë", "Zoë_T1w"), ("sub-a", "sub-a_T1w")],
        &[Some(40), None, Some(31)],
        &[Some("Ünïcode ✓"), Some(""), None],
    ))
    .unwrap();
    let f = Dataframe::open(&ctx, &uri).unwrap().read(None).unwrap();
    assert_eq!(f.names(), vec!["obs_subject_id", "obs_id", "age", "name"]);
    // byte order: "Zoë" < "sub-a" < "sub-b" (uppercase first)
    assert_eq!(f.column("obs_id").unwrap().values.as_str().unwrap(), &["Zoë_T1w", "sub-a_T1w", "sub-b_T1w"]);
    let age = f.column("age").unwrap();
    assert!(age.is_null(0) && age.values.get_i64(1) == Some(31) && age.values.get_i64(2) == Some(40));
    let name = f.column("name").unwrap();
    assert_eq!((name.str_at(0), name.str_at(1), name.str_at(2)), (Some(""), None, Some("Ünïcode ✓")));
}

#[test]
fn rewrites_replace_rows_and_new_columns_are_added() {
    let tmp = TempUri::new();
    let ctx = ctx_with(|_| {});
    let uri = tmp.uri("meta");
    let mut df = Dataframe::create(&ctx, &uri, &["obs_subject_id"], &[("obs_ids".into(), ColumnType::STR)]).unwrap();
    df.write(&Frame {
        columns: vec![
            Column::new("obs_subject_id", Values::Str(vec!["s1".into(), "s2".into()])),
            Column::new("obs_ids", Values::Str(vec!["[]".into(), "[]".into()])),
        ],
    })
    .unwrap();
    // update one row and add a float column in the same write
    df.write(&Frame {
        columns: vec![
            Column::new("obs_subject_id", Values::Str(vec!["s2".into()])),
            Column::new("obs_ids", Values::Str(vec![r#"["s2_T1w"]"#.into()])),
            Column::new("weight", Values::float64(vec![71.5])),
        ],
    })
    .unwrap();
    let f = df.read(None).unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f.column("obs_ids").unwrap().values.as_str().unwrap(), &["[]", r#"["s2_T1w"]"#]);
    let w = f.column("weight").unwrap();
    assert!(w.is_null(0) && w.values.get_f64(1) == Some(71.5));
    assert_eq!(df.count().unwrap(), 2);
    // missing index column and empty ids are refused
    let bad = Frame { columns: vec![Column::new("obs_ids", Values::Str(vec!["x".into()]))] };
    assert!(df.write(&bad).is_err());
    let empty_id = Frame { columns: vec![Column::new("obs_subject_id", Values::Str(vec![String::new()]))] };
    assert!(df.write(&empty_id).is_err());
}
