"""Reading the report's Markdown tables in tests: each opens with a caption paragraph."""
from pathlib import Path


def md_caption(path: Path) -> str:
    """The caption paragraph that opens a Markdown table file."""
    caption, sep, _ = Path(path).read_text().partition("\n\n")
    assert sep and not caption.startswith("|"), f"{path} opens with no caption"
    return caption


def md_table(path: Path) -> list[str]:
    """The lines of the pipe table after the caption (header, rule, rows)."""
    text = Path(path).read_text()
    md_caption(path)
    return text.partition("\n\n")[2].splitlines()
