"""Interactive explorers (lesson 10): formats, loaders, and a live serving timeline.
Plain methods return small dataclasses; ``.ui`` (ipywidgets) only wires controls to them.
"""

from forgekit._lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {
    "FormatExplorer": "format_explorer",
    "FormatRun": "format_explorer",
    "LoaderPlayground": "loader_playground",
    "LoadAttempt": "loader_playground",
    "ServingTimeline": "serving_timeline",
    "TimelineStep": "serving_timeline",
    "WidgetError": "base",
    "close_all": "base",
})
