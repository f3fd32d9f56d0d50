"""`writech serve`: the teachers' web app (the live class board and the reports, per school)."""
