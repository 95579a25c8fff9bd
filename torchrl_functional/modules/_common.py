"""Names shared by the drop-in modules."""

#: Entries the modules add to the (shallow) copy they hand to the functional loss.
#: Nested under a private root so they can never collide with user entries.
PRIVATE = "_torchrl_functional"
ACTOR_OUTPUT = (PRIVATE, "actor_output")
OLD_ACTOR_OUTPUT = (PRIVATE, "old_actor_output")
OLD_VALUE = (PRIVATE, "old_state_value")
PROXIMAL_ACTOR_OUTPUT = (PRIVATE, "proximal_actor_output")
