//! What the commands print: aligned columns for people, the API's JSON for scripts.

use clap::Args;
use serde_json::Value;

/// How a command prints what it got.
#[derive(Debug, Clone, Args)]
pub struct OutputFlags {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl OutputFlags {
    /// Prints `value` as JSON, or `table` for people.
    pub fn print(&self, value: &Value, table: impl FnOnce() -> Table) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            table().print();
        }
    }
}

/// Rows under a header, printed as left-aligned columns.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// A table of the items of JSON array `items`, a row each.
    pub fn of<const N: usize>(
        header: [&str; N],
        items: &Value,
        row: impl Fn(&Value) -> [String; N],
    ) -> Self {
        let mut table = Self::new(header);
        for item in items.as_array().into_iter().flatten() {
            table.row(row(item));
        }
        table
    }

    /// Adds a row.
    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.into());
    }

    /// Prints the table to standard output.
    pub fn print(&self) {
        print!("{self}");
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// A JSON field as a table cell: strings bare, absent values as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(["NAME", "N"]);
        t.row(["a-long-name".to_owned(), "1".to_owned()]);
        t.row(["b".to_owned(), "22".to_owned()]);
        assert_eq!(
            t.to_string(),
            "NAME         N\na-long-name  1\nb            22\n"
        );
    }

    #[test]
    fn absent_fields_print_as_a_dash() {
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&Value::from("")), "-");
        assert_eq!(cell(&Value::from(3)), "3");
        assert_eq!(cell(&Value::from("x")), "x");
    }
}
