//! Multi-row statements: the `VALUES` list of a batch, with every row's placeholders
//! numbered after the rows before it, so one statement carries a whole batch.

use std::fmt::Write;

/// `count` copies of `row`, a row template whose placeholders are `$1`…`$width`, joined by
/// commas, the placeholders of copy `i` shifted by `i * width`. A template may use a
/// placeholder twice or not at all, and may hold literals: `($1, $2, 0, $2)`.
pub fn rows(count: usize, width: usize, row: &str) -> String {
    let mut sql = String::with_capacity(count * (row.len() + 8));
    for i in 0..count {
        if i > 0 {
            sql.push_str(", ");
        }
        let mut rest = row;
        while let Some(at) = rest.find('$') {
            sql.push_str(&rest[..at]);
            let digits = rest[at + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(rest.len() - at - 1, |n| n);
            let n: usize = rest[at + 1..at + 1 + digits]
                .parse()
                .expect("row templates number their placeholders");
            let _ = write!(sql, "${}", i * width + n);
            rest = &rest[at + 1 + digits..];
        }
        sql.push_str(rest);
    }
    sql
}

/// The placeholders of a template of `width` parameters: `($1, $2, …, $width)`.
pub fn template(width: usize) -> String {
    let list: Vec<String> = (1..=width).map(|n| format!("${n}")).collect();
    format!("({})", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_numbers_its_placeholders_after_the_rows_before() {
        assert_eq!(
            rows(3, 2, "($1, 0, $2, $1)"),
            "($1, 0, $2, $1), ($3, 0, $4, $3), ($5, 0, $6, $5)"
        );
        assert_eq!(template(3), "($1, $2, $3)");
        assert_eq!(rows(2, 3, &template(3)), "($1, $2, $3), ($4, $5, $6)");
    }
}
