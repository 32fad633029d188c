"""Campaigns on Asterisk: agent sessions on nailed-up legs, the lead hopper, AMD, the 2-second
connect and the safe-harbor message. Pure machines (`agent`, `call`, `hopper`) apart from the
IO runtime (`runtime`)."""
