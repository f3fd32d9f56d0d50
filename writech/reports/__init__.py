"""Learning-diagnosis reports per student, class and school (SPEC §8).

model.py          the report Structs: the versioned JSON schema every format renders
rows.py           what the queries hand the builder
queries.py        reads from ClickHouse (embedded or server), parameterised
wrong_answers.py  reads from error_record (SQLite or MySQL), parameterised
build.py          the pure logic: rows in, report model out
render.py         JSON, Markdown and self-contained HTML (Jinja2 + pygal SVG)
labels.py         every word shown, in Chinese and English
service.py        open the stores, read, build: a report by kind and id
cli.py            `writech report ...`
"""
