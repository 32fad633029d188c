"""The runtime kernel every kind of call runs on.

- `runner`: `MachineRunner`, one pure machine driven from an ordered inbox (ARI events through
  the dispatcher, commands, the results of its own actions) by one task; `drive()` the loop.
- `slice`: `RuntimeSlice`, what a kind of call shares: a task group, drain, call-end listeners,
  the orphan sweep of our channels and bridges by id prefix after every (re)connect.
- `ids`: every id prefix, Redis key and their patterns, in one place.
- `gate`: how runtimes ask the compliance gate (CRM campaign and lead in, policy out; the
  re-check policy).
- `recording`, `optout`, `screen_pop`: the one home of archiving a call's recording, recording
  an opt-out, and the agent's screen pop.
- `agent_events`, `snapshots`, `live`, `errors`, `records`: the agents' event hub, the CRM
  call-row writer, live calls as supervisors see them, refusals, and the record-writer seam.
"""
