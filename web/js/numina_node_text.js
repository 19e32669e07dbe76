// Shows the text a NUMINA node returns in its `ui` output (counts, notices) on the node itself: ComfyUI's
// frontend draws `ui.text` only for its own Preview Any node.
import { app } from "../../../scripts/app.js";

const TEXT_WIDGET = "numina_report";
const REPORTING_NODES = new Set([
  "NuminaSettings", "NuminaNumeralParser", "NuminaAttentionCaptureKSampler", "NuminaHeadSelector",
  "NuminaCountableLayout", "NuminaLayoutRefiner", "NuminaLayoutGuidedSampler", "NuminaLayoutToMask",
  "NuminaMaskToLayout", "NuminaCountObjects",
]);

function addReportWidget(node) {
  const previews = window.comfyAPI?.textPreviewWidgets;
  if (previews?.addTextPreviewWidgets) {
    // Frontend ≥ 1.4x: the same read-only text box Preview Any uses.
    previews.addTextPreviewWidgets(node);
    return;
  }
  const { ComfyWidgets } = window.comfyAPI.widgets;
  const widget = ComfyWidgets.STRING(node, TEXT_WIDGET, ["STRING", { multiline: true }], app).widget;
  widget.element.readOnly = true;
  widget.serialize = false;
}

function showReport(node, output) {
  const text = output?.text;
  if (!text) return;
  const previews = window.comfyAPI?.textPreviewWidgets;
  if (previews?.updateTextPreviewWidgets) {
    previews.updateTextPreviewWidgets(node, output);
  } else {
    const widget = node.widgets?.find((w) => w.name === TEXT_WIDGET);
    if (widget) widget.value = Array.isArray(text) ? text.join("\n\n") : text;
  }
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "NUMINA.NodeReports",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!REPORTING_NODES.has(nodeData.name)) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      addReportWidget(this);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      showReport(this, output);
    };
  },
});
