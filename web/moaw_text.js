// Moaw: show a node's `text` UI output (e.g. Select Motion Layers' chosen layers) on the node itself,
// as a read-only text box, the way core "Preview as Text" does.
import { app } from "../../scripts/app.js";

const NODES = new Set(["SelectLayers", "ExtractMotionFeatures", "SaveMotionFeatures", "MoawVideoToWanTracks"]);

app.registerExtension({
  name: "moaw.ShowText",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = (message?.text || []).join("\n");
      let widget = this.widgets?.find((w) => w.name === "moaw_shown");
      if (!widget) {
        widget = app.widgets?.STRING
          ? app.widgets.STRING(this, "moaw_shown", ["STRING", { multiline: true }], app).widget
          : this.addWidget("text", "moaw_shown", "", () => {}, {});
        widget.serialize = false;  // display only: never saved into widgets_values
        if (widget.inputEl) { widget.inputEl.readOnly = true; widget.inputEl.style.opacity = 0.8; }
      }
      widget.value = text;
      this.setSize([this.size[0], Math.max(this.size[1], this.computeSize()[1])]);
      app.graph.setDirtyCanvas(true, true);
    };
  },
});
