"""The linear strategy run through Mitogen for Ansible (the `mitogen` package of uv.lock).

ansible.cfg selects it for the project's playbooks: each host keeps one Python interpreter
for the whole run, and modules run in it with their imports kept, instead of a new
interpreter that unpacks and imports Ansible's module_utils for every task. Plays and their
results are those of the linear strategy. `ANSIBLE_STRATEGY=linear` runs without it.
"""

from typing import Any

import ansible.collections.list
import ansible_mitogen.loaders
import ansible_mitogen.planner
import ansible_mitogen.strategy

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)

# Mitogen's planner lists every installed collection (reading each one's metadata: the
# community `ansible` package holds about a hundred) for every collection module a task runs,
# in the worker process forked for that task, whose cache starts empty each time. The list
# does not change during a run: it is read once in the controller process the workers are
# forked from, and the planner is given that list.
_collection_dirs: list[str] = []


def _load_collections(invocation: Any) -> None:
    invocation._extra_sys_paths.update(_collection_dirs)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    """Ansible's linear strategy with Mitogen's connections and module executor."""

    def run(self, iterator: Any, play_context: Any) -> Any:
        if not _collection_dirs:
            _collection_dirs.extend(
                path.decode("utf-8") for path in ansible.collections.list.list_collection_dirs()
            )
            ansible_mitogen.planner._load_collections = _load_collections
        return super().run(iterator, play_context)
