"""Click-to-call: the CRM (or an agent's console) asks to call a lead for an agent.

`inputs`, `actions`, `record`, `machine`: the pure call machine (`CallMachine`);
`runtime`: one runner per call over ARI (`ClickToCallRuntime`); `api`: its HTTP routes.
"""
