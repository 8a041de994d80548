"""Where a model's generated text becomes SQL, and when generation may stop: one rule for every command.

A t2s-trained model answers with one line of SQL and a newline, and that line is the answer. Chat and base models
often wrap the query in a Markdown fence (```` ```sql … ``` ````) or lead with `SQL:`; stopping at their first newline
would leave only ```` ```sql ````. So, for generate, evaluate, ask, the page and the GRPO reward alike:

* blank lines before the answer, and a leading `SQL:` label, are skipped;
* an answer that opens a fence runs to the closing fence (or to the end of the text), and its SQL is the fence's
  content with its line breaks made spaces (`t2s.execution.sql_text.normalize_whitespace`);
* otherwise the SQL is the first line, trimmed.

`answer_complete` is the matching stop rule: generation ends at a newline only once the answer is complete, so no
answer is cut at its fence line. For a trained model's one-line answers both give exactly what stopping at the
first newline gave.
"""

from __future__ import annotations

import contextlib
import re
import weakref

from t2s.execution.sql_text import normalize_whitespace

_FENCE = re.compile(r"```[A-Za-z0-9_+.-]*")  # an opening fence and its optional language tag
_LABEL = re.compile(r"sql\s*:\s*", re.IGNORECASE)


def _content_lines(text: str) -> list[str]:
    """The lines from the first non-blank one on, with a leading `SQL:` label removed (a label alone on its line
    is dropped with the line)."""
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines:
        first = lines[0].strip()
        label = _LABEL.match(first)
        if label is None:
            break
        rest = first[label.end() :]
        if rest:
            lines[0] = rest
            break
        lines.pop(0)
        while lines and not lines[0].strip():
            lines.pop(0)
    return lines


def _fence_opener(line: str) -> bool:
    return bool(_FENCE.fullmatch(line.strip()))


def answer_sql(text: str) -> str:
    """The SQL of a generated answer (the module's rule)."""
    lines = _content_lines(text)
    if not lines:
        return ""
    first = lines[0].strip()
    if _fence_opener(first):
        body = []
        for line in lines[1:]:
            if line.strip().startswith("```"):
                break
            body.append(line)
        return normalize_whitespace("\n".join(body))
    if first.startswith("```"):  # a fence on one line: ```sql SELECT 1```
        inner = _FENCE.sub("", first, count=1)
        inner = inner[: inner.index("```")] if "```" in inner else inner
        return inner.strip()
    return first


def answer_complete(text: str) -> bool:
    """Whether a newline at the end of `text` ends the answer: the text already holds its whole SQL."""
    lines = _content_lines(text)
    if len(lines) < 2:  # the answer's first line has not ended yet
        return False
    if not _fence_opener(lines[0]):
        return True
    return any(line.strip().startswith("```") for line in lines[1:])  # the closing fence


_NEWLINE_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def newline_token_ids(tokenizer) -> frozenset[int]:
    """Tokens whose text holds a newline: only after one of them can an answer be complete. Computed once per
    tokenizer (a pass over the vocabulary)."""
    try:
        return _NEWLINE_IDS[tokenizer]
    except (KeyError, TypeError):
        pass
    vocab = tokenizer.get_vocab()
    ids = frozenset(i for token, i in vocab.items() if "\n" in tokenizer.convert_tokens_to_string([token]))
    with contextlib.suppress(TypeError):  # an object that takes no weak reference: computed each time
        _NEWLINE_IDS[tokenizer] = ids
    return ids


class AnswerEnd:
    """A transformers stopping criterion: a row stops when its last token holds a newline and its answer is complete
    (`answer_complete`); `prompt_length` columns of the batch are prompt. End of sequence is generate()'s own rule."""

    def __init__(self, tokenizer, prompt_length: int):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.newlines = newline_token_ids(tokenizer)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] <= self.prompt_length:
            return done
        for row, token in enumerate(input_ids[:, -1].tolist()):
            if token in self.newlines:  # the cheap test first: most steps decode nothing
                done[row] = ends_answer(self.tokenizer, input_ids[row, self.prompt_length :], self.newlines)
        return done


def ends_answer(tokenizer, generated, newlines: frozenset[int]) -> bool:
    """Whether the last of the `generated` tokens ends the answer: it holds a newline (`newlines`, from
    `newline_token_ids`) and the text so far is complete (`answer_complete`)."""
    return int(generated[-1]) in newlines and answer_complete(tokenizer.decode(generated, skip_special_tokens=True))
