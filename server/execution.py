"""How validated operations execute: `gateway.execution` picks the compiled plan (server/plan.py, run by
server/plan_run.py) or graphql-core's own executor. The plan runs queries; mutations, subscriptions and
what the planner does not support (see `plan.plannable`) take graphql-core's path either way, as does any
request whose schema extensions wrap the resolvers (middleware) or which can be aborted.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from server.plan import plan_for
from server.plan_run import Run

log = logging.getLogger(__name__)
Execution = Literal["plan", "graphql-core"]


class PlanExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, executing planned operations with their plan."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        middleware = self.middleware_manager
        if serially or self.abort_signal is not None or not self.error_propagation \
                or (middleware is not None and middleware.middlewares):
            return super().execute_operation(serially)
        try:
            plan = plan_for(self.schema, self.operation, self.fragment_definitions, self.field_resolver)
            root = None if plan is None else plan.root(self.variable_values)
        except Exception:  # a planner's fault must not cost the request: graphql-core runs it
            log.exception("the operation could not be planned; graphql-core executes it")
            plan = root = None
        if plan is None or root is None:
            return super().execute_operation(serially)
        return Run(self).run(root, plan.root_type, self.root_value)


def executor_class(execution: Execution) -> type[StrawberryGraphQLCoreExecutionContext]:
    """The execution context class for `gateway.execution`."""
    return PlanExecutor if execution == "plan" else StrawberryGraphQLCoreExecutionContext
