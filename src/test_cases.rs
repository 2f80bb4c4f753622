//! `cases!`: one `#[test]` per case of a table, so a failing case hides no other and its name
//! says which behaviour broke.

/// `cases! { check { name: arg, …; … } }` writes, for each line, `#[test] fn name()` calling
/// `check(arg, …)`.
macro_rules! cases {
    ($check:path { $($name:ident: $($arg:expr),* ;)+ }) => {
        $(
            #[test]
            fn $name() {
                $check($($arg),*);
            }
        )+
    };
}
pub(crate) use cases;
