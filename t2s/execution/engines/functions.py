"""Functions a query may call on a server engine: an allowlist per dialect.

On PostgreSQL and DuckDB every function the engine's own parser finds must be on the list (`COUNT(*)` is DuckDB's
`count_star`; `EXTRACT(… FROM …)`, `SUBSTRING(… FROM …)`, `x AT TIME ZONE y` are PostgreSQL's `pg_catalog.extract`,
`substring`, `timezone`). On MySQL the functions sqlglot parses as typed nodes pass unless `parse_mysql.py` refuses
their kind, and any other name must be on the list. The lists hold the common scalar, string, date, aggregate and
window functions of each engine, and none that reads files, sleeps, locks, signals other sessions, changes or shows
settings, tells who or where the query runs, runs SQL given as text, or builds a value of any size from a small
query (`repeat`, `lpad`/`rpad`, `space`, `printf` and `format` widths). Add a name here (with the reason) if a query
you trust is refused. Every Spider gold query (dev and train, transpiled from SQLite) passes on each dialect.
"""

from __future__ import annotations

import functools

_COMMON = """
abs acos asin atan atan2 avg bit_length cbrt ceil ceiling char_length character_length coalesce concat concat_ws cos
cot count cume_dist degrees dense_rank div exp first_value floor greatest lag last_value lead least left length ln
log log10 log2 lower ltrim max md5 min mod nth_value ntile nullif percent_rank pi position power radians rank
replace reverse right round row_number rtrim sign sin sqrt stddev stddev_pop stddev_samp strpos substr
substring sum tan trim trunc truncate upper var_pop var_samp variance date time timestamp year month day hour minute
second extract date_part date_trunc now current_date current_time current_timestamp ifnull isnull nvl iif
initcap translate split_part starts_with ends_with regexp_replace regexp_matches to_char to_date to_number
to_timestamp age make_date array_agg string_agg bool_and bool_or every median mode percentile_cont percentile_disc
corr covar_pop covar_samp regr_slope generate_series unnest width_bucket random
"""
_PER_DIALECT = {
    "postgres": """
        btrim chr ascii quote_ident quote_literal quote_nullable octet_length overlay lower_inc upper_inc
        date_bin justify_days justify_hours justify_interval make_interval make_time make_timestamp to_hex
        array_length array_position array_to_string cardinality json_agg jsonb_agg json_build_object
        jsonb_build_object row_to_json to_json to_jsonb json_array_length jsonb_array_length regexp_split_to_array
        string_to_array gen_random_uuid float8 int4 int8 numeric text isfinite timezone similar_to_escape
        """,
    "mysql": """
        char ascii locate instr field find_in_set elt lcase ucase mid strcmp soundex
        date_format str_to_date datediff timestampdiff timestampadd dayname dayofweek dayofmonth dayofyear
        monthname quarter week weekday weekofyear yearweek curdate curtime sysdate unix_timestamp from_unixtime
        last_day makedate adddate subdate addtime subtime period_add period_diff convert_tz group_concat if
        truncate octet_length hex unhex conv bin oct crc32 sha1 sha2 json_extract json_unquote json_length
        """,
    "duckdb": """
        list list_value list_aggregate list_sort array_length string_split str_split contains prefix suffix
        regexp_extract regexp_full_match strftime strptime epoch datediff date_diff datesub date_sub dayname
        monthname dayofweek dayofmonth dayofyear weekofyear yearweek quarter last_day make_timestamp arg_max
        arg_min argmax argmin any_value first last histogram approx_count_distinct list_distinct unnest range
        ascii chr instr lcase ucase ilike_escape like_escape hash if ifnull bit_count count_star len strlen to_years to_months to_days
        to_hours to_minutes to_seconds to_milliseconds to_microseconds
        """,
}


@functools.cache
def allowed_functions(dialect: str) -> frozenset[str]:
    return frozenset((_COMMON + _PER_DIALECT.get(dialect, "")).split())
