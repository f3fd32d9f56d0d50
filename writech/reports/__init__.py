"""Learning-diagnosis reports per student, class and school, and a page for families (SPEC §8).

model.py          the report Structs: the versioned JSON schema every format renders
rows.py           what the queries hand the builder
queries.py        reads from ClickHouse (embedded or server), parameterised; error_record
                  is read through its store (`writech.stores.base.open_error_store`)
indicators.py     per-student totals, evidence floors, class medians, trends
homework.py       flagged submissions, knowledge points, common wrong questions, 错题本
characters.py     stroke order per character, for a student and a class
advice.py         attention and one action each, tiers, suggestions, strengths
build.py          the pure logic put together: rows in, report model out
roster.py         display names from a school's roster (CSV)
render.py         JSON, Markdown and self-contained HTML (Jinja2 + pygal SVG)
labels.py         every word shown, in Chinese and English
service.py        open the stores, read, build: a report by kind and id
cli.py            `writech report ...`
"""
