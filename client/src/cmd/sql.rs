//! `peagectl sql`: a read-only query's rows, as an aligned table or JSON.

use serde_json::json;

use peage_client::v1::SqlRequest;
use peage_client::ClientError;

use super::context::Ctx;
use crate::output::{print_json, print_read_note, read_json};

pub async fn run(ctx: &mut Ctx, query: String, max_rows: u32) -> Result<(), ClientError> {
    let request = SqlRequest {
        query,
        stale: ctx.stale,
        max_rows,
    };
    let reply = ctx.admin().await?.sql(request).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    let rows: Vec<&Vec<String>> = r.rows.iter().map(|row| &row.values).collect();
    if ctx.json {
        let objects: Vec<serde_json::Map<String, serde_json::Value>> = rows
            .iter()
            .map(|values| {
                r.columns
                    .iter()
                    .cloned()
                    .zip(values.iter().map(|v| json!(v)))
                    .collect()
            })
            .collect();
        print_json(json!({"columns": r.columns, "rows": objects, "read": read_json(&r.read)}));
        return Ok(());
    }
    let widths: Vec<usize> = (0..r.columns.len())
        .map(|i| {
            let longest = rows.iter().map(|v| v[i].chars().count()).max().unwrap_or(0);
            longest.max(r.columns[i].chars().count()).min(60)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&r.columns);
    for values in &rows {
        line(values);
    }
    print_read_note(&r.read);
    Ok(())
}
