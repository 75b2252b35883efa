// Dashboard webview entry (bundled to dist/webview.js, its CSS to dist/webview.css).
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { App } from './app';
import { registerComponents } from './components';

registerComponents();
new App(document.getElementById('app')!);
