// Entry point: one GraphQL client for the page, provided to every component.
import { createApp } from 'vue';
import App from './App.vue';
import { createTickmeshClient, endpointsFor, TICKMESH_CLIENT } from './graphql/client';
import { installProbe } from './probe';
import './styles.css';

installProbe();
const client = createTickmeshClient(endpointsFor(window.location));
createApp(App).provide(TICKMESH_CLIENT, client).mount('#app');
