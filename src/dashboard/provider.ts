// The dashboard's webviews: the sidebar view `bloomPeft.dashboard` (a WebviewViewProvider) and the same page in an
// editor tab ("Open in Editor", for a wide view). Both get the HTML with a nonce CSP, resources only from dist/ and
// media/, and hand every message to the one controller (which validates it and answers the view it came from).
import * as vscode from 'vscode';
import type { DashboardController } from './controller';
import { makeNonce, renderDashboardHtml } from './html';

export const DASHBOARD_VIEW_ID = 'bloomPeft.dashboard';
export const DASHBOARD_PANEL_TYPE = 'bloomPeft.dashboardPanel';

/** Fills a webview with the dashboard and connects it to the controller; dispose when the webview goes. */
export function connectDashboard(webview: vscode.Webview, extensionUri: vscode.Uri, controller: DashboardController): vscode.Disposable {
  const dist = vscode.Uri.joinPath(extensionUri, 'dist');
  webview.options = { enableScripts: true, enableForms: false, localResourceRoots: [dist, vscode.Uri.joinPath(extensionUri, 'media')] };
  // the webview may not exist yet (hidden) when a message is posted: postMessage then just returns false;
  // state is restored by the snapshot the webview asks for on 'ready'
  const post = (msg: unknown) => void webview.postMessage(msg);
  const attached = controller.attach(post);
  const sub = webview.onDidReceiveMessage(raw => void controller.handle(raw, post));
  webview.html = renderDashboardHtml({
    cspSource: webview.cspSource,
    nonce: makeNonce(),
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
    styleUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.css')).toString(),
  });
  return { dispose: () => { sub.dispose(); attached.dispose(); } };
}

export class DashboardViewProvider implements vscode.WebviewViewProvider {
  constructor(private readonly extensionUri: vscode.Uri, private readonly controller: DashboardController) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    const connection = connectDashboard(view.webview, this.extensionUri, this.controller);
    view.onDidDispose(() => connection.dispose());
  }
}

/** "Open in Editor": one editor tab with the same dashboard (revealed again if it is already open). */
export class DashboardPanel {
  private panel: vscode.WebviewPanel | undefined;

  constructor(private readonly extensionUri: vscode.Uri, private readonly controller: DashboardController) {}

  show(): void {
    if (this.panel) { this.panel.reveal(); return; }
    const panel = vscode.window.createWebviewPanel(DASHBOARD_PANEL_TYPE, 'Bloom PEFT Dashboard', vscode.ViewColumn.Active, { retainContextWhenHidden: false });
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, 'media', 'icon.svg');
    const connection = connectDashboard(panel.webview, this.extensionUri, this.controller);
    panel.onDidDispose(() => { connection.dispose(); this.panel = undefined; });
    this.panel = panel;
  }

  dispose(): void { this.panel?.dispose(); }
}
