"""The web page: ask a database a question and read an evaluation (`t2s app`; `pip install 't2s[app]'`)."""
