//! Building multi-row statements, which both backends take in the same form.

/// `($1, $2), ($3, $4), ...`: placeholders for `rows` rows of `columns` values.
pub(crate) fn values(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(row * columns + column + 1).to_string());
        }
        out.push(')');
    }
    out
}

/// `$from, $from+1, ...`: `count` placeholders for an `IN (...)` list.
pub(crate) fn list(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_every_value_once_in_order() {
        assert_eq!(values(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values(1, 1), "($1)");
        assert_eq!(list(3, 2), "$3, $4");
    }
}
