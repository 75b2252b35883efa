// The WebviewViewProvider of the sidebar view `bloomPeft.dashboard`: HTML with a nonce CSP, resources only
// from dist/ and media/, and every message handed to the controller (which validates it).
import * as vscode from 'vscode';
import type { DashboardController } from './controller';
import { makeNonce, renderDashboardHtml } from './html';

export const DASHBOARD_VIEW_ID = 'bloomPeft.dashboard';

export class DashboardViewProvider implements vscode.WebviewViewProvider {
  constructor(private readonly extensionUri: vscode.Uri, private readonly controller: DashboardController) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist');
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    view.webview.options = { enableScripts: true, enableForms: false, localResourceRoots: [dist, media] };
    const webview = view.webview;
    // the webview may not exist yet (hidden) when a message is posted: postMessage then just returns false;
    // state is restored by the snapshot the webview asks for on 'ready'
    const attached = this.controller.attach(msg => void webview.postMessage(msg));
    const sub = webview.onDidReceiveMessage(raw => void this.controller.handle(raw));
    webview.html = renderDashboardHtml({
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.css')).toString(),
    });
    view.onDidDispose(() => { sub.dispose(); attached.dispose(); });
  }
}
