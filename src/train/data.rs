//! Training inputs: the outcomes CSV, the NDJSON event history, and flat CRM lead tables turned
//! into the same shape (one `form_conversion` per row carrying the row as profile fields).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::event::{decode_json, Event, EventType, FieldValue};
use crate::time::{parse_rfc3339, Micros};

/// What happened to one lead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Became a customer.
    pub converted: bool,
    /// When it converted, if known: features are taken just before this time.
    pub converted_at: Option<Micros>,
}

/// Leads with outcomes, in input order (the order fixes the split, so it is deterministic).
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Lead ids in input order.
    pub ids: Vec<String>,
    /// Outcome per lead, same order.
    pub outcomes: Vec<Outcome>,
    /// Lead id → index.
    pub index: HashMap<String, usize>,
}

impl Outcomes {
    fn push(&mut self, file: &Path, line: usize, id: String, o: Outcome) -> Result<()> {
        if self.index.contains_key(&id) {
            bail!(
                "{}:{line}: lead `{id}` appears twice\n  fix: give each lead one outcome row",
                file.display()
            );
        }
        self.index.insert(id.clone(), self.ids.len());
        self.ids.push(id);
        self.outcomes.push(o);
        Ok(())
    }

    /// Number of converted leads.
    pub fn positives(&self) -> usize {
        self.outcomes.iter().filter(|o| o.converted).count()
    }
}

fn parse_flag(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "1.0" => Some(true),
        "0" | "false" | "no" | "n" | "0.0" => Some(false),
        _ => None,
    }
}

/// Reads `lead_id,converted[,converted_at]` (`converted` 0/1, true/false, yes/no). The header
/// names the columns (any order, more columns allowed); a file without a header is read in
/// that column order.
pub fn read_outcomes(path: &Path) -> Result<Outcomes> {
    let open = |headers: bool| {
        csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .has_headers(headers)
            .flexible(true)
            .from_path(path)
            .with_context(|| format!("cannot read outcomes {}", path.display()))
    };
    let mut rdr = open(true)?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (id_col, conv_col, at_col, first_line) = match (col("lead_id"), col("converted")) {
        (Some(i), Some(c)) => (i, c, col("converted_at"), 2),
        _ if headers.get(1).and_then(parse_flag).is_some() => {
            rdr = open(false)?;
            (0, 1, Some(2), 1)
        }
        _ => bail!(
            "{}: header must name `lead_id` and `converted` (found: {})\n  fix: first line `lead_id,converted,converted_at`",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(",")
        ),
    };
    let mut out = Outcomes::default();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + first_line;
        let rec = rec.with_context(|| format!("{}:{line}: bad CSV", path.display()))?;
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let id = rec.get(id_col).unwrap_or("").to_string();
        if id.is_empty() {
            bail!("{}:{line}: empty lead_id", path.display());
        }
        let conv = rec.get(conv_col).unwrap_or("");
        let converted = parse_flag(conv).ok_or_else(|| {
            anyhow!(
                "{}:{line}: converted = `{conv}` is not 0/1/true/false",
                path.display()
            )
        })?;
        let converted_at = match at_col.and_then(|c| rec.get(c)).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(parse_rfc3339(s).ok_or_else(|| {
                anyhow!(
                    "{}:{line}: converted_at = `{s}` is not an RFC 3339 time",
                    path.display()
                )
            })?),
        };
        out.push(
            path,
            line,
            id,
            Outcome {
                converted,
                converted_at: converted_at.filter(|_| converted),
            },
        )?;
    }
    Ok(out)
}

/// Writes `lead_id,converted,converted_at` (the header, then a row per lead) — what
/// [`read_outcomes`] reads.
pub fn write_outcomes<'a>(
    rows: impl IntoIterator<Item = (&'a str, bool, Option<Micros>)>,
    mut out: impl std::io::Write,
) -> std::io::Result<()> {
    writeln!(out, "lead_id,converted,converted_at")?;
    for (id, converted, at) in rows {
        let at = at.map(crate::time::format_rfc3339).unwrap_or_default();
        writeln!(out, "{id},{},{at}", converted as u8)?;
    }
    out.flush()
}

/// An NDJSON event history held in memory (events borrow from it).
pub struct History {
    text: String,
}

/// The decoded history.
pub struct Parsed<'a> {
    /// Valid events, in file order.
    pub events: Vec<Event<'a>>,
    /// Number of lines that are not valid events.
    pub invalid: usize,
    /// The first few bad lines: (line number, reason).
    pub invalid_examples: Vec<(usize, String)>,
}

impl History {
    /// Reads the whole file.
    pub fn read(path: &Path) -> Result<History> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read events {}", path.display()))?;
        Ok(History { text })
    }

    /// Decodes every line; invalid lines are counted and the first few kept.
    pub fn parse(&self) -> Parsed<'_> {
        let mut out = Parsed {
            events: Vec::new(),
            invalid: 0,
            invalid_examples: Vec::new(),
        };
        for (i, line) in self.text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match decode_json(line.as_bytes()) {
                Ok(ev) => out.events.push(ev),
                Err(e) => {
                    out.invalid += 1;
                    if out.invalid_examples.len() < 20 {
                        out.invalid_examples.push((i + 1, e.to_string()));
                    }
                }
            }
        }
        out
    }
}

/// How a flat lead table (one row per lead) is read.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The CSV file.
    pub path: PathBuf,
    /// Label column (1/0, true/false, yes/no).
    pub label: String,
    /// Column with the lead id; absent = `row-<n>`.
    pub id_column: Option<String>,
    /// Columns left out (leakage, identifiers); a trailing `*` matches a prefix.
    pub exclude: Vec<String>,
    /// Cell values meaning "missing" besides the empty cell (case-insensitive).
    pub missing: Vec<String>,
}

/// How one table column became a profile field.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnMapping {
    /// Column header.
    pub column: String,
    /// Profile field name.
    pub field: String,
    /// Every present value is a number.
    pub numeric: bool,
    /// Rows with a value.
    pub present: usize,
}

/// A flat table turned into events and outcomes.
pub struct Table {
    /// One `form_conversion` per lead, profile = the row.
    pub events: Vec<Event<'static>>,
    /// Label per lead.
    pub outcomes: Outcomes,
    /// Column → field mapping (what the docs call the mapping).
    pub columns: Vec<ColumnMapping>,
    /// Rows skipped for a missing or unreadable label.
    pub skipped_rows: usize,
}

/// The profile field name of a column header: lower case, runs of other characters → `_`.
pub fn field_name(header: &str) -> String {
    let mut out = String::new();
    for c in header.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

fn excluded(header: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => header
            .to_lowercase()
            .starts_with(&prefix.trim().to_lowercase()),
        None => header.trim().eq_ignore_ascii_case(p.trim()),
    })
}

/// The time stamp given to table rows (a table has no event time; fit points do not decay).
pub const TABLE_TS: Micros = 946_684_800_000_000; // 2000-01-01T00:00:00Z

/// Which columns of a lead table hold what.
struct TableColumns {
    label: usize,
    id: Option<usize>,
    /// Columns without a header (a trailing comma in every line): must stay empty.
    unnamed: Vec<usize>,
    /// Columns that become profile fields.
    used: Vec<usize>,
}

/// One data row: lead id, label, and the used columns' values (`None` when missing).
type TableRow = (String, bool, Vec<Option<String>>);

/// Reads a flat lead table: columns located, each used column mapped to a profile field, the
/// rows read (a column is numeric when every present value is a number), then one
/// `form_conversion` per lead.
pub fn read_table(spec: &TableSpec) -> Result<Table> {
    let path = &spec.path;
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read lead table {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let cols = locate_columns(spec, &headers)?;
    let mut columns = column_mappings(path, &headers, &cols.used)?;
    let (rows, skipped) = read_rows(spec, &mut rdr, &cols, &mut columns)?;
    let (events, outcomes) = table_events(path, rows, &columns)?;
    Ok(Table {
        events,
        outcomes,
        columns,
        skipped_rows: skipped,
    })
}

/// Finds the label and id columns, checks every `--exclude` pattern matches, and lists the
/// columns that become profile fields.
fn locate_columns(spec: &TableSpec, headers: &csv::StringRecord) -> Result<TableColumns> {
    let path = &spec.path;
    let all = || headers.iter().collect::<Vec<_>>().join(", ");
    let find = |name: &str, what: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                anyhow!(
                    "{}: no column `{name}` for {what} (columns: {})",
                    path.display(),
                    all()
                )
            })
    };
    let label = find(&spec.label, "--label")?;
    let id = match &spec.id_column {
        Some(c) => Some(find(c, "--id-column")?),
        None => None,
    };
    for p in &spec.exclude {
        if !headers.iter().any(|h| excluded(h, std::slice::from_ref(p))) {
            bail!(
                "{}: --exclude `{p}` matches no column (columns: {})",
                path.display(),
                all()
            );
        }
    }
    let unnamed: Vec<usize> = (0..headers.len())
        .filter(|&i| field_name(&headers[i]).is_empty())
        .collect();
    let used: Vec<usize> = (0..headers.len())
        .filter(|&i| {
            i != label
                && Some(i) != id
                && !excluded(&headers[i], &spec.exclude)
                && !unnamed.contains(&i)
        })
        .collect();
    Ok(TableColumns {
        label,
        id,
        unnamed,
        used,
    })
}

/// Column → profile field (snake case of the header); two columns may not map to one field.
fn column_mappings(
    path: &Path,
    headers: &csv::StringRecord,
    used: &[usize],
) -> Result<Vec<ColumnMapping>> {
    let mut columns: Vec<ColumnMapping> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for &i in used {
        let field = field_name(&headers[i]);
        if field.is_empty() {
            bail!(
                "{}: column {} (`{}`) has no usable name\n  fix: rename it or --exclude it",
                path.display(),
                i + 1,
                &headers[i]
            );
        }
        if let Some(other) = seen.insert(field.clone(), headers[i].to_string()) {
            bail!(
                "{}: columns `{other}` and `{}` both map to profile field `{field}`\n  fix: --exclude one of them",
                path.display(),
                &headers[i]
            );
        }
        columns.push(ColumnMapping {
            column: headers[i].to_string(),
            field,
            numeric: true,
            present: 0,
        });
    }
    Ok(columns)
}

/// The data rows with a readable label and id (the others are counted as skipped); notes per
/// column how often it is present and whether every value is a number.
fn read_rows(
    spec: &TableSpec,
    rdr: &mut csv::Reader<std::fs::File>,
    cols: &TableColumns,
    columns: &mut [ColumnMapping],
) -> Result<(Vec<TableRow>, usize)> {
    let path = &spec.path;
    let missing: Vec<String> = spec.missing.iter().map(|m| m.to_lowercase()).collect();
    let is_missing = |v: &str| v.is_empty() || missing.iter().any(|m| v.eq_ignore_ascii_case(m));
    let mut rows: Vec<TableRow> = Vec::new();
    let mut skipped = 0;
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{}:{line}: bad CSV", path.display()))?;
        if let Some(&c) = cols
            .unnamed
            .iter()
            .find(|&&c| !rec.get(c).unwrap_or("").is_empty())
        {
            bail!(
                "{}:{line}: column {} has a value but no header\n  fix: name the column in the first line",
                path.display(),
                c + 1
            );
        }
        let Some(label) = parse_flag(rec.get(cols.label).unwrap_or("")) else {
            skipped += 1;
            continue;
        };
        let id = match cols.id {
            Some(c) => rec.get(c).unwrap_or("").to_string(),
            None => format!("row-{}", n + 1),
        };
        if id.is_empty() {
            skipped += 1;
            continue;
        }
        let values: Vec<Option<String>> = cols
            .used
            .iter()
            .zip(columns.iter_mut())
            .map(|(&c, m)| {
                let v = rec.get(c).unwrap_or("");
                if is_missing(v) {
                    None
                } else {
                    m.present += 1;
                    if m.numeric && !v.parse::<f64>().is_ok_and(f64::is_finite) {
                        m.numeric = false;
                    }
                    Some(v.to_string())
                }
            })
            .collect();
        rows.push((id, label, values));
    }
    for m in columns.iter_mut() {
        m.numeric &= m.present > 0;
    }
    Ok((rows, skipped))
}

/// One `form_conversion` per row, its profile the row's present values, and the outcomes.
fn table_events(
    path: &Path,
    rows: Vec<TableRow>,
    columns: &[ColumnMapping],
) -> Result<(Vec<Event<'static>>, Outcomes)> {
    let mut outcomes = Outcomes::default();
    let mut events = Vec::with_capacity(rows.len());
    for (n, (id, label, values)) in rows.into_iter().enumerate() {
        let fields: Vec<(Cow<'static, str>, FieldValue<'static>)> = values
            .into_iter()
            .zip(columns)
            .filter_map(|(v, m)| {
                let v = v?;
                let value = if m.numeric {
                    FieldValue::Num(v.parse().expect("checked numeric"))
                } else {
                    FieldValue::Str(Cow::Owned(v))
                };
                Some((Cow::Owned(m.field.clone()), value))
            })
            .collect();
        events.push(Event {
            event_id: Cow::Owned(format!("table-row-{}", n + 1)),
            kind: EventType::FormConversion,
            lead_id: Cow::Owned(id.clone()),
            ts: TABLE_TS,
            url: None,
            duration_s: None,
            campaign_id: None,
            sent_at: None,
            user_agent: None,
            form_id: Some(Cow::Borrowed("crm-import")),
            offer_stage: None,
            fields,
        });
        outcomes.push(
            path,
            n + 2,
            id,
            Outcome {
                converted: label,
                converted_at: None,
            },
        )?;
    }
    Ok((events, outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_snake_case() {
        assert_eq!(
            field_name("What is your current occupation"),
            "what_is_your_current_occupation"
        );
        assert_eq!(
            field_name("Total Time Spent on Website"),
            "total_time_spent_on_website"
        );
        assert_eq!(field_name(" A--B "), "a_b");
    }

    #[test]
    fn outcomes_with_or_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("with.csv");
        std::fs::write(
            &with,
            "converted_at,lead_id,converted\n2026-11-02T00:00:00Z,L-1,1\n,L-2,0\n",
        )
        .unwrap();
        let o = read_outcomes(&with).unwrap();
        assert_eq!(o.ids, ["L-1", "L-2"]);
        assert_eq!(
            o.outcomes[0].converted_at,
            parse_rfc3339("2026-11-02T00:00:00Z")
        );
        assert!(!o.outcomes[1].converted);
        let without = dir.path().join("without.csv");
        std::fs::write(&without, "L-1,true\nL-2,no,\n").unwrap();
        let o = read_outcomes(&without).unwrap();
        assert_eq!(o.ids, ["L-1", "L-2"]);
        assert_eq!(o.positives(), 1);
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "lead,outcome\nL-1,maybe\n").unwrap();
        let e = read_outcomes(&bad).unwrap_err().to_string();
        assert!(e.contains("must name `lead_id` and `converted`"), "{e}");
    }

    #[test]
    fn exclusion_patterns() {
        let p = vec!["Tags".to_string(), "Asymmetrique*".to_string()];
        assert!(excluded("tags", &p));
        assert!(excluded("Asymmetrique Activity Index", &p));
        assert!(!excluded("Lead Source", &p));
    }
}
