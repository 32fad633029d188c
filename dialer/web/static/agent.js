import { Api, mountHeader } from "/static/shell.js";

const api = new Api();
await api.load();
mountHeader(api);
