//! The PostgreSQL `Store`: set-based writes, migrations embedded and applied at start.
