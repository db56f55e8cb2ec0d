"""The course itself: the lesson map, the notebook runner behind ``make run`` and the tests, and
the claims every lesson checks. Lesson checkers live in ``forgekit.exercises``."""

from forgekit._lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {
    "Lesson": "map", "LESSONS": "map", "available": "map", "CourseMap": "map", "course_map": "map",
})
