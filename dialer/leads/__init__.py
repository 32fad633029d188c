"""Lead lists: `dialer leads import` (the pipeline itself is `crm_bridge.lead_import`)."""
