"""The teacher's outputs: run online, cached in memory, or stored on disk.

`TeacherCache` says how outputs computed once are kept (float16, the top-k
logits); `TeacherStore` keeps them on disk for every later run;
`TeacherSource` is what a distiller asks for each batch's outputs.
"""

from kd_keras.teacher_outputs.cache import TeacherCache
from kd_keras.teacher_outputs.source import Teacher, TeacherSource
from kd_keras.teacher_outputs.store import TeacherStore

__all__ = ["Teacher", "TeacherCache", "TeacherSource", "TeacherStore"]
