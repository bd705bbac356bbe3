"""The main window: a thin composition root that wires the controller to the canvas, menus and status bar.

Layout lives here; logic lives in `AppController` (photos, model, device, exports) and `ViewController`
(viewport and tiles); File ▸ Export… is `ExportFlow`, Export Folder… `FolderExport`, and Inspect mode with
Help ▸ How It Works `InspectDock`, each owned by the window. Every slot runs on the GUI thread. Nothing here
imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QToolBar,
    QWidget,
)

from viewer import paths
from viewer.app.canvas import Canvas
from viewer.app.controller import AppController
from viewer.app.engine_menus import (
    clear_disk_cache,
    fill_device_menu,
    fill_model_menu,
    fill_store_menus,
)
from viewer.app.export_flow import ExportFlow
from viewer.app.export_flow import default_export_dir as default_export_dir  # re-exported
from viewer.app.export_folder_dialog import FolderExport
from viewer.app.help import ShortcutsDialog
from viewer.app.history import SelectionHistory
from viewer.app.inspect_dock import InspectDock
from viewer.app.messages import COMPARE_LABELS, CompareMethod
from viewer.app.navigator import NavigatorPanel
from viewer.app.photo import IMAGE_FILTER, IMAGE_SUFFIXES
from viewer.app.session import SessionRestore
from viewer.app.settings import AppSettings
from viewer.app.view_controller import DEFAULT_CACHE_BYTES, describe_zoom
from viewer.app.worker import EngineFactory
from viewer.engine.export import ExportPlan
from viewer.engine.weights import FETCH_COMMAND

APP_NAME = "LIIF Viewer"
ZOOM_PRESETS = (25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800)


def app_icon() -> QIcon:
    """The app icon from resources/icons (drawn by `viewer.app.icon`), if present."""
    icon = QIcon()
    folder = paths.resources_dir() / "icons"
    for f in sorted(folder.glob("liif-viewer-*.png")):
        icon.addFile(str(f))
    return icon


def parse_zoom_text(text: str) -> float | None:
    """'800', '800%', '8x', '×8' -> zoom factor; 'fit' -> 0.0 (meaning fit); anything else None."""
    t = text.strip().lower().replace(" ", "")
    if t == "fit":
        return 0.0
    try:
        if t.endswith("%"):
            return float(t[:-1]) / 100
        if t.endswith("x") or t.startswith(("x", "×")):
            return float(t.strip("x×"))
        return float(t) / 100
    except ValueError:
        return None


def _unique_keys(shortcuts: Sequence[QKeySequence | str]) -> list[QKeySequence]:
    """The shortcuts without empty or repeated ones (a standard key can be empty on some platforms)."""
    keys: list[QKeySequence] = []
    for s in shortcuts:
        k = QKeySequence(s)
        if not k.isEmpty() and k not in keys:
            keys.append(k)
    return keys


class MainWindow(QMainWindow):
    """The viewer window."""

    def __init__(
        self,
        settings: AppSettings,
        *,
        engine_factory: EngineFactory | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        display_profile: Callable[[], bytes | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """`display_profile` reads the display's ICC profile (default: from the platform; tests give one)."""
        super().__init__(parent)
        self.settings = settings
        self.controller = AppController(
            settings,
            engine_factory=engine_factory,
            cache_bytes=cache_bytes,
            display_profile=display_profile,
            parent=self,
        )
        self.view = self.controller.view
        self.canvas = Canvas(self.view, self)
        self.setCentralWidget(self.canvas)
        self.history = SelectionHistory(self.view, self)
        self.session = SessionRestore(settings, self.view)
        """The last photo, zoom and position, saved at close and brought back at start."""
        self.nav_panel = NavigatorPanel(self.view)
        self.navigator = self.nav_panel.navigator
        self.nav_dock = QDockWidget("Navigator", self)
        self.nav_dock.setObjectName("navigator")
        self.nav_dock.setWidget(self.nav_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.nav_dock)
        self._messages: list[QMessageBox] = []
        self.export_flow = ExportFlow(
            self,
            self.controller,
            settings,
            status=lambda text, ms: self.statusBar().showMessage(text, ms),
            show_error=lambda title, text: self.show_error(title, text),  # looked up when called
            changed=self._refresh_actions,
        )
        """File ▸ Export…: its dialog, the file name, the background run, its progress and outcome."""
        self.folder_export = FolderExport(settings, engine_factory, self)
        """File ▸ Export Folder…: its dialog, background run, progress and summary."""
        # Inspect mode: its controller (GUI thread), its link to the render worker, its dock; How It Works.
        self.inspector = InspectDock(self, self.controller, self.canvas)
        self.inspect_link = self.inspector.link
        self.inspect = self.inspector.inspect
        self.inspect_panel = self.inspector.panel
        self.inspect_dock = self.inspector.dock

        self.setObjectName("main-window")
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status()
        self._connect()
        self.resize(1280, 860)
        geometry = settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = settings.window_state()
        if state is not None:
            self.restoreState(state)
        self.nav_dock.setVisible(settings.flag("navigator", True))
        self.act_navigator.setChecked(self.nav_dock.isVisible())
        self.inspect_dock.hide()  # Inspect mode always starts off
        self._refresh_status()

    # -- construction -------------------------------------------------------------------------------------
    def _action(
        self,
        text: str,
        slot: object,
        shortcuts: tuple[QKeySequence | str, ...] = (),
        *,
        checkable: bool = False,
    ) -> QAction:
        a = QAction(text, self)
        keys = _unique_keys(shortcuts)
        if keys:
            a.setShortcuts(keys)
        a.setCheckable(checkable)
        if checkable:
            a.toggled.connect(slot)  # type: ignore[arg-type]
        else:
            a.triggered.connect(slot)  # type: ignore[arg-type]
        self.addAction(a)  # shortcuts work even with the menu bar hidden
        return a

    def _build_actions(self) -> None:
        K = QKeySequence.StandardKey
        v = self.view
        self.act_open = self._action("&Open…", self.open_dialog, (QKeySequence(K.Open),))
        self.act_export = self._action("&Export…", lambda: self.export_dialog(), ("Ctrl+E",))
        self.act_export_view = self._action(
            "Export Current &View…", lambda: self.export_dialog("view"), ("Ctrl+Shift+E",)
        )
        self.act_export_folder = self._action("Export &Folder…", self.folder_export.open_dialog)
        self.act_next_photo = self._action(
            "&Next Photo in Folder", lambda: self.controller.step_photo(+1), ("PgDown",)
        )
        self.act_prev_photo = self._action(
            "&Previous Photo in Folder", lambda: self.controller.step_photo(-1), ("PgUp",)
        )
        self.act_restore_session = self._action(
            "Reopen Last Photo at &Start", self.session.set_enabled, checkable=True
        )
        self.act_restore_session.setChecked(self.session.enabled)
        self.act_restore_session.setToolTip("At start, show the last photo at its zoom and position")
        self.act_quit = self._action("&Quit", self.close, (QKeySequence(K.Quit), "Ctrl+Q"))
        self.act_zoom_in = self._action(
            "Zoom &In", lambda: v.zoom_step(+1), ("+", "=", QKeySequence(K.ZoomIn))
        )
        self.act_zoom_out = self._action("Zoom &Out", lambda: v.zoom_step(-1), ("-", QKeySequence(K.ZoomOut)))
        self.act_fit = self._action("&Fit to Window", v.fit, ("0",))
        self.act_100 = self._action("&Actual Size (100%)", v.actual_size, ("1",))
        self.act_pan_left = self._action("Pan Left", lambda: self._pan(-1, 0), ("Left",))
        self.act_pan_right = self._action("Pan Right", lambda: self._pan(1, 0), ("Right",))
        self.act_pan_up = self._action("Pan Up", lambda: self._pan(0, -1), ("Up",))
        self.act_pan_down = self._action("Pan Down", lambda: self._pan(0, 1), ("Down",))
        # Shift+arrow pans by half the view. Separate actions: a "Left" shortcut never matches Shift+Left.
        # Not in the menus; Help lists them with the gestures.
        self.act_pan_far = [
            self._action(
                f"Pan {name} by Half",
                lambda _=False, d=d: self._pan(d[0], d[1], far=True),
                (f"Shift+{name}",),
            )
            for name, d in (("Left", (-1, 0)), ("Right", (1, 0)), ("Up", (0, -1)), ("Down", (0, 1)))
        ]
        self.act_compare = self._action("&Compare with Bicubic", self._set_compare, ("C",), checkable=True)
        self.act_navigator = self._action("&Navigator", self._set_navigator, ("N",), checkable=True)
        self.act_select = self._action("&Select Region", self.canvas.set_select_mode, ("R",), checkable=True)
        self.act_select_all = self._action(
            "Select &Whole Image", self._select_all, (QKeySequence(K.SelectAll),)
        )
        self.act_clear_sel = self._action("&Clear Selection", self._escape, ("Esc",))
        # Undo and redo of the selection; their text names the step ("Undo Clear Selection").
        stack = self.history.stack
        self.act_undo = stack.createUndoAction(self, "&Undo")
        # Written out: the platform's bindings add keys few keyboards have (F14, a dedicated Undo key).
        self.act_undo.setShortcuts(_unique_keys(["Ctrl+Z"]))
        self.act_redo = stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts(_unique_keys(["Ctrl+Shift+Z", "Ctrl+Y"]))
        for a in (self.act_undo, self.act_redo):
            self.addAction(a)
        self.act_fullscreen = self._action("&Full Screen", self._toggle_fullscreen, ("F11",))
        self.act_inspect = self._action("&Inspect Mode", self.inspector.set_active, ("I",), checkable=True)
        self.act_inspect.setToolTip(
            "Latent lattice, feature map and a probe of the pixel under the pointer (I)"
        )
        self.act_shortcuts = self._action("&Keyboard Shortcuts", self.show_shortcuts, ("F1", "?"))
        self.act_how = self._action("&How It Works", self.inspector.show_how_it_works)
        self.act_about = self._action("&About LIIF Viewer", self._about)
        self.act_fetch_help = self._action("How to Get the Official &Weights…", self._show_fetch_help)
        self.act_open_weights = self._action("Open Weights &File…", self._open_weights_file)
        self.act_compare.setChecked(self.settings.flag("compare", False))
        self.act_compare.setToolTip("Split view: LIIF on the left, bicubic on the right (C)")
        # What compare mode's right side shows; choosing one also turns compare mode on.
        self.compare_group = QActionGroup(self)
        self.act_compare_methods: dict[str, QAction] = {}
        for method, text, key in (
            ("bicubic", "&Bicubic", "Shift+B"),
            ("nearest", "&Source Pixels (Nearest Neighbour)", "Shift+S"),
        ):
            a = self._action(text, lambda _=False, m=method: self._choose_compare_method(m), (key,))
            a.setCheckable(True)
            self.compare_group.addAction(a)
            self.act_compare_methods[method] = a
        self.act_select.setToolTip("Drag to select the region to export (R)")
        # What photos are converted to for the screen (remembered).
        self.display_colour_group = QActionGroup(self)
        self.act_display_colour: dict[str, QAction] = {}
        for mode, text, tip in (
            (
                "auto",
                "&Automatic (Display Profile if the System Says, else sRGB)",
                "Convert colours for the display's own ICC profile where the system says what it is",
            ),
            ("srgb", "&sRGB", "Convert colours for an sRGB display, whatever the system says"),
        ):
            a = self._action(text, lambda _=False, m=mode: self._choose_display_colour(m))
            a.setCheckable(True)
            a.setChecked(self.settings.display_colour() == mode)
            a.setToolTip(tip)
            self.display_colour_group.addAction(a)
            self.act_display_colour[mode] = a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file = mb.addMenu("&File")
        file.addAction(self.act_open)
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addAction(self.act_next_photo)
        file.addAction(self.act_prev_photo)
        file.addSeparator()
        file.addAction(self.act_export)
        file.addAction(self.act_export_view)
        file.addAction(self.act_export_folder)
        file.addSeparator()
        file.addAction(self.act_restore_session)
        file.addSeparator()
        file.addAction(self.act_quit)
        edit = mb.addMenu("&Edit")
        edit.addAction(self.act_undo)
        edit.addAction(self.act_redo)
        edit.addSeparator()
        for a in (self.act_select, self.act_select_all, self.act_clear_sel):
            edit.addAction(a)
        view = mb.addMenu("&View")
        for a in (self.act_zoom_in, self.act_zoom_out, self.act_fit, self.act_100):
            view.addAction(a)
        view.addSeparator()
        pan = view.addMenu("&Pan")
        for a in (self.act_pan_left, self.act_pan_right, self.act_pan_up, self.act_pan_down):
            pan.addAction(a)
        view.addSeparator()
        view.addAction(self.act_compare)
        against = view.addMenu("Compare A&gainst")
        for a in self.act_compare_methods.values():
            against.addAction(a)
        view.addAction(self.act_inspect)
        view.addAction(self.act_navigator)
        view.addAction(self.act_fullscreen)
        view.addSeparator()
        self.display_colour_menu = view.addMenu("&Display Colour")
        for a in self.act_display_colour.values():
            self.display_colour_menu.addAction(a)
        self.model_menu = mb.addMenu("&Model")
        self.model_menu.aboutToShow.connect(self._fill_model_menu)
        self.device_menu = mb.addMenu("&Device")
        self.device_menu.aboutToShow.connect(self._fill_device_menu)
        help_menu = mb.addMenu("&Help")
        help_menu.addAction(self.act_how)
        help_menu.addAction(self.act_shortcuts)
        help_menu.addAction(self.act_fetch_help)
        help_menu.addAction(self.act_about)
        # Filled once so the menus are not empty before first shown (and for tests).
        self._fill_model_menu()
        self._fill_device_menu()

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("main-toolbar")
        tb.setIconSize(QSize(18, 18))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(self.act_open)
        tb.addSeparator()
        tb.addAction(self.act_zoom_out)
        self.zoom_box = QComboBox(tb)
        self.zoom_box.setEditable(True)
        self.zoom_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.zoom_box.addItem("Fit")
        for p in ZOOM_PRESETS:
            self.zoom_box.addItem(f"{p}%")
        self.zoom_box.setMinimumContentsLength(7)
        self.zoom_box.setToolTip("Zoom: type a percentage (e.g. 800%) or choose one")
        self.zoom_box.textActivated.connect(self._zoom_entered)  # picked from the list
        edit = self.zoom_box.lineEdit()
        if edit is not None:  # typed: NoInsert means the combo box itself ignores text not in the list
            edit.returnPressed.connect(lambda: self._zoom_entered(edit.text()))
        tb.addWidget(self.zoom_box)
        tb.addAction(self.act_zoom_in)
        tb.addAction(self.act_fit)
        tb.addAction(self.act_100)
        tb.addSeparator()
        tb.addAction(self.act_compare)
        tb.addAction(self.act_inspect)
        tb.addAction(self.act_select)
        tb.addAction(self.act_export)
        self.addToolBar(tb)
        self.toolbar = tb

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.render_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(140)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.folder_label = QLabel()
        self.folder_label.setToolTip("Place of the photo in its folder (PageDown: next, PageUp: previous)")
        self.zoom_label = QLabel()
        self.mag_label = QLabel()
        self.model_label = QLabel()
        self.device_label = QLabel()
        sb.addWidget(self.render_label, 1)
        sb.addWidget(self.progress)
        for w in (self.folder_label, self.zoom_label, self.mag_label, self.model_label, self.device_label):
            sb.addPermanentWidget(w)
        sb.messageChanged.connect(self._on_status_message)

    def _connect(self) -> None:
        c, v = self.controller, self.view
        v.view_changed.connect(self._on_view_changed)
        v.refine_changed.connect(self._refresh_status)
        c.encode_changed.connect(self._refresh_status)
        c.engine_changed.connect(self._refresh_status)
        c.photo_changed.connect(self._on_photo_changed)
        c.folder_changed.connect(self._on_folder_changed)
        c.display_changed.connect(self._on_display_changed)
        c.photo_changed.connect(self.session.on_photo_changed)
        c.loading_changed.connect(self._on_loading)
        c.error.connect(self.show_error)
        c.missing_weights.connect(self.show_missing_weights)
        c.notice.connect(self._on_notice)
        self.canvas.selection_made.connect(self._on_selection_made)
        self.inspector.wire(self.act_inspect)
        self.nav_dock.visibilityChanged.connect(self._on_nav_visibility)
        method: CompareMethod = "nearest" if self.settings.compare_method() == "nearest" else "bicubic"
        c.set_compare_method(method)
        self._show_compare_method(method)
        if self.act_compare.isChecked():
            v.set_compare(True)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self, photo: Path | None = None, *, fallback: Path | None = None) -> None:
        """Start the workers (the model loads in the background) and open `photo`; without one, the last
        session's photo (when restoring is on and it still exists), else `fallback`, if any."""
        self.controller.start()
        photo = self.session.photo_to_open(photo) or fallback
        if photo is not None:
            self.controller.open(photo)
        self._refresh_actions()

    def closeEvent(self, event: QCloseEvent) -> None:
        """GUI thread: remember the window, stop the workers (cancelling any export: no file is left)."""
        if self.export_flow.running:
            answer = QMessageBox.question(
                self, APP_NAME, "An export is running. Cancel it and quit?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.export_flow.cancel()
        self.settings.set_geometry(self.saveGeometry())
        self.settings.set_window_state(self.saveState())
        self.session.save()
        self.settings.sync()
        for box in self._messages:
            box.close()
        # Short: an encode of a huge photo stops only at its next tile; the threads are daemons anyway.
        self.inspect_link.clear()
        self.folder_export.close(timeout=3.0)  # cancelled: the photo being exported leaves no file
        self.controller.close(timeout=3.0)
        super().closeEvent(event)

    # -- files ----------------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = self.settings.last_dir() or str(Path.home())
        name, _ = QFileDialog.getOpenFileName(self, "Open Photo", start, IMAGE_FILTER)
        if name:
            self.settings.set_last_dir(Path(name).parent)
            self.controller.open(Path(name))

    def _fill_recent(self) -> None:
        m = self.recent_menu
        m.clear()
        files = self.settings.recent_files()
        for i, p in enumerate(files):
            label = f"&{i + 1} {p.name}" if i < 9 else p.name
            a = m.addAction(label)
            a.setToolTip(str(p))
            a.setStatusTip(str(p))
            a.triggered.connect(lambda _=False, p=p: self._open_recent(p))
        if not files:
            m.addAction("(none)").setEnabled(False)
        m.addSeparator()
        clear = m.addAction("Clear List")
        clear.setEnabled(bool(files))
        clear.triggered.connect(self.settings.clear_recent)

    def _open_recent(self, path: Path) -> None:
        if not path.exists():
            self.settings.remove_recent(path)
            self.show_error(
                "Cannot open the photo", f"{path}: the file no longer exists; removed from the list."
            )
            return
        self.controller.open(path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """GUI thread: accept a drop of local image files."""
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """GUI thread: open the first dropped file (the loader says so if it is not an image)."""
        files = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
            self.controller.open((images or files)[0])
            event.acceptProposedAction()

    # -- model and device -----------------------------------------------------------------------------------
    def _fill_model_menu(self) -> None:
        """GUI thread: the Model menu, built anew each time it opens (the catalogue may have changed)."""
        fill_model_menu(self.model_menu, self.controller.config.model, self._choose_model)
        self.model_menu.addSeparator()
        self.model_menu.addAction(self.act_open_weights)
        self.model_menu.addAction(self.act_fetch_help)

    def _fill_device_menu(self) -> None:
        """GUI thread: the Device menu (devices, then Feature Memory and Disk Cache)."""
        engine = self.controller.engine
        available = list(engine.available_devices) if engine is not None else None
        fill_device_menu(self.device_menu, available, self.controller.config.device, self._choose_device)
        self.device_menu.addSeparator()
        fill_store_menus(self.device_menu, self.settings, self._set_store_setting, self._clear_disk_cache)

    def _set_store_setting(self, which: str, mb: int) -> None:
        """GUI thread: remember a feature-memory or disk-cache choice and hand it to the worker."""
        if which == "memory":
            self.settings.set_feature_memory_mb(mb)
        else:
            self.settings.set_disk_cache_mb(mb)
        self.controller.apply_store_settings()
        self.statusBar().showMessage("Saved; the new setting applies from the next photo opened.", 4000)

    def _clear_disk_cache(self) -> None:
        """GUI thread: delete the disk cache's tile files (cheap: no model call, no encoding)."""
        n, folder = clear_disk_cache()
        self.statusBar().showMessage(f"Cleared the disk cache ({n} tiles) in {folder}.", 5000)

    def _choose_model(self, name: str) -> None:
        self.controller.set_model(name)
        self._refresh_status()

    def _open_weights_file(self) -> None:
        start = str(paths.user_weights_dir()) if paths.user_weights_dir().is_dir() else str(Path.home())
        name, _ = QFileDialog.getOpenFileName(
            self, "Open LIIF Weights", start, "LIIF weights (*.safetensors *.pth *.pt);;All files (*)"
        )
        if name:
            self.controller.set_model(name)

    def _choose_device(self, device: str) -> None:
        self.controller.set_device(device)
        self._refresh_status()

    # -- view ------------------------------------------------------------------------------------------------
    def _pan(self, dx: int, dy: int, far: bool = False) -> None:
        """Arrow keys pan by an eighth of the canvas (Shift+arrow, `far`: half)."""
        f = 0.5 if far else 0.125
        self.view.pan_by(dx * self.canvas.width() * f, dy * self.canvas.height() * f)

    def _set_compare(self, on: bool) -> None:
        self.view.set_compare(on)
        self.settings.set_flag("compare", on)

    def _choose_compare_method(self, method: str) -> None:
        """View ▸ Compare Against: bicubic or the source pixels (remembered); turns compare mode on."""
        m: CompareMethod = "nearest" if method == "nearest" else "bicubic"
        self.settings.set_compare_method(m)
        self.controller.set_compare_method(m)
        self._show_compare_method(m)
        if not self.act_compare.isChecked():
            self.act_compare.setChecked(True)

    def _show_compare_method(self, method: CompareMethod) -> None:
        label = COMPARE_LABELS[method]
        self.act_compare_methods[method].setChecked(True)
        self.act_compare.setText(f"&Compare with {label.title()}")
        self.act_compare.setToolTip(f"Split view: LIIF on the left, {label.lower()} on the right (C)")

    def _choose_display_colour(self, mode: str) -> None:
        """View ▸ Display Colour: convert for the display's profile (Automatic) or for sRGB (remembered)."""
        self.controller.set_display_colour(mode)

    def _on_display_changed(self) -> None:
        """GUI thread: the open photo is shown in new colours; refresh what shows them outside the canvas."""
        photo = self.view.photo
        self.inspect_panel.set_display(photo.display if photo is not None else None)
        self.nav_panel.refresh()
        self.navigator.update()
        self.canvas.update()
        self.inspector.on_display_changed()

    def _set_navigator(self, on: bool) -> None:
        self.nav_dock.setVisible(on)

    def _on_nav_visibility(self, visible: bool) -> None:
        if not self.isMinimized() and self.isVisible():
            self.settings.set_flag("navigator", visible)
            self.act_navigator.blockSignals(True)
            self.act_navigator.setChecked(visible)
            self.act_navigator.blockSignals(False)

    def _escape(self) -> None:
        """Esc clears the selection (undoable); with none, it leaves full screen, as people expect."""
        if self.view.selection is None and self.isFullScreen():
            self.showNormal()
        else:
            self.history.change(None, "Clear Selection")

    def _toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def _select_all(self) -> None:
        if self.view.photo is not None:
            whole = (0.0, 0.0, float(self.view.photo.width), float(self.view.photo.height))
            self.history.change(whole, "Select Whole Image")
            self._refresh_actions()

    def _on_selection_made(self, step: str) -> None:
        """A drag on the canvas changed the selection (drawn, moved, resized or cleared): one undoable step."""
        self.history.record(step)
        self._refresh_actions()

    def _zoom_entered(self, text: str) -> None:
        self.canvas.setFocus()  # first: the field shows the zoom again only once it has lost the focus
        z = parse_zoom_text(text)
        if z is None:
            self.statusBar().showMessage(f"Not a zoom: '{text}' (type e.g. 800% or Fit)", 4000)
            self._on_view_changed()
        elif z == 0.0:
            self.view.fit()
        else:
            self.view.zoom_to(z)

    def _refine_state(self) -> str:
        """What the refinable view shows now: refined (every visible tile from LIIF), refining (tiles are
        on their way) or interpolated (no model yet, or nothing requested)."""
        c, v = self.controller, self.view
        if c.engine is None or c.encode.running or c.encode.seconds is None:
            return "interpolated"
        if v.is_settled():
            return "refined"
        return "refining" if v.refine.running else "interpolated"

    def _on_view_changed(self) -> None:
        zoom, mag = describe_zoom(self.view.viewport, self._refine_state())
        self.zoom_label.setText(f"Zoom {zoom}" if zoom else "")
        self.mag_label.setText(mag)
        edit = self.zoom_box.lineEdit()
        text = "Fit" if self.view.fit_mode and zoom else zoom
        if (edit is None or not edit.hasFocus()) and self.zoom_box.currentText() != text:
            self.zoom_box.setEditText(text)
        self._refresh_status()

    def _on_photo_changed(self) -> None:
        self.canvas.cancel_drag()  # a drag began on the previous photo: it must not edit this one
        self.history.reset()
        self.nav_panel.refresh()
        photo = self.view.photo
        self.inspect_panel.set_display(photo.display if photo is not None else None)
        if photo is not None:
            self.setWindowTitle(f"{photo.path.name} — {APP_NAME}")
            self.canvas.setFocus()
        self._refresh_actions()
        self._on_view_changed()

    def _on_folder_changed(self) -> None:
        """GUI thread: show where the open photo is in its folder ("3 / 120")."""
        pos = self.controller.folder_position
        self.folder_label.setText(f"{pos[0]} / {pos[1]}" if pos is not None else "")

    def _on_loading(self, loading: bool) -> None:
        if loading and self.controller.loading is not None:
            self.canvas.set_empty_text(f"Opening {self.controller.loading.name}…")
            self.statusBar().showMessage(f"Opening {self.controller.loading}…")
        else:
            self.canvas.set_empty_text("Open a photo (Ctrl+O) or drop one here")
            self.statusBar().clearMessage()

    def _refresh_actions(self) -> None:
        has_photo = self.view.photo is not None
        exporting = self.export_flow.running
        for a in (self.act_export, self.act_export_view, self.act_select_all, self.act_select):
            a.setEnabled(has_photo and not (exporting and a in (self.act_export, self.act_export_view)))

    def _refresh_status(self) -> None:
        c = self.controller
        eng = c.engine
        if eng is not None:
            self.model_label.setText(f"Model: {eng.model_name} ({eng.precision})")
            dev = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}.get(eng.device_type, eng.device_type.upper())
            extra = f" {eng.device}" if ":" in eng.device else ""
            self.device_label.setText(f"Device: {dev}{extra}" + (" (fallback)" if eng.fallback else ""))
        else:
            self.model_label.setText(f"Model: {Path(c.config.model).name}")
            self.device_label.setText("Device: …" if c.engine_error is None else "Device: —")
        text, busy, done, total = self._render_state()
        self.render_label.setText(text)
        self.mag_label.setText(describe_zoom(self.view.viewport, self._refine_state())[1])
        if busy:
            self.progress.setRange(0, max(1, total))
            self.progress.setValue(done)
            # While a message is shown the status bar hides its widgets and shows them again after;
            # showing the bar now would draw it over the message (see _on_status_message).
            if not self.statusBar().currentMessage():
                self.progress.show()
        else:
            self.progress.hide()

    def _on_status_message(self, message: str) -> None:
        """GUI thread: a temporary status message ended; bring back the progress bar if still busy."""
        if not message:
            self._refresh_status()

    def _render_state(self) -> tuple[str, bool, int, int]:
        """(text, busy, done, total) for the render-state part of the status bar."""
        c, v = self.controller, self.view
        if v.photo is None:
            return ("Opening…", True, 0, 0) if c.loading is not None else ("No photo", False, 0, 0)
        if c.engine is None:
            if c.engine_error is not None:
                return "No model (interpolated view only): see Model menu", False, 0, 0
            return "Loading the model… (interpolated preview)", True, 0, 0
        enc = c.encode
        if enc.running or enc.seconds is None:
            return "Preparing the photo… (interpolated preview)", True, 0, 0
        vp = v.viewport
        last = v.refine.last_seconds
        last_text = f"last full refine {last:.2f} s" if last is not None else "nothing refined yet"
        if vp is not None and not vp.refinable:
            return f"Source downscale at ≤100% magnification ({last_text})", False, 0, 0
        r = v.refine
        if r.running and r.total:
            if r.done == 0:
                return "Encoding the view… (interpolated preview)", True, 0, r.total
            return f"Refining {r.done}/{r.total} tiles… (the rest interpolated)", True, r.done, r.total
        if v.is_settled():
            return f"Refined · {last_text}", False, 0, 0
        return f"Interpolated preview · {last_text}", False, 0, 0

    # -- export (File ▸ Export…: `ExportFlow`) ---------------------------------------------------------------
    def export_dialog(self, region: str | None = None) -> None:
        """File ▸ Export: choose the region and print size, then a file name, then run in the background."""
        self.export_flow.open_dialog(region)

    def start_export(self, plan: ExportPlan, out: Path, jpeg_quality: int = 92) -> int:
        """Run an export in the background with a progress dialog and Cancel; the window stays usable."""
        return self.export_flow.start(plan, out, jpeg_quality)

    def cancel_export(self) -> None:
        self.export_flow.cancel()

    @property
    def exporting(self) -> bool:
        return self.export_flow.running

    # -- messages ---------------------------------------------------------------------------------------------
    def _message(self, icon: QMessageBox.Icon, title: str, text: str, detail: str = "") -> QMessageBox:
        """A window-modal message that does not block the event loop; identical open ones are not repeated."""
        for box in self._messages:
            if box.isVisible() and box.text() == text:
                return box
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        if detail:
            box.setDetailedText(detail)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda _=0, b=box: self._forget(b))
        self._messages.append(box)
        box.open()
        return box

    def _forget(self, box: QMessageBox) -> None:
        if box in self._messages:
            self._messages.remove(box)
        box.deleteLater()

    def open_messages(self) -> list[QMessageBox]:
        """Message boxes currently shown (tests)."""
        return list(self._messages)

    def show_error(self, title: str, message: str) -> None:
        """Show a failure (GUI thread); internal errors carry the traceback as details."""
        text, _, detail = message.partition("\n\n")
        self._message(QMessageBox.Icon.Warning, title, text, detail)

    def show_missing_weights(self, message: str) -> None:
        """The model's weights are not downloaded: say how to get them."""
        self._message(
            QMessageBox.Icon.Information,
            "Model weights are missing",
            f"{message}.\n\nTo download the official LIIF weights (about 17 MB, verified by checksum), run in a "
            f"terminal:\n\n    {FETCH_COMMAND}\n\nthen choose the model again in the Model menu. Until then the "
            "photo is shown interpolated, without LIIF detail.".replace("..", "."),
        )

    def _show_fetch_help(self) -> None:
        self.show_missing_weights(f"The official weights are installed into {paths.user_weights_dir()}")

    def _on_notice(self, message: str, dialog: bool) -> None:
        self.statusBar().showMessage(message, 10000)
        if dialog:
            self._message(QMessageBox.Icon.Information, APP_NAME, message)

    def show_shortcuts(self) -> None:
        menu_actions: list[QAction] = []
        for top in self.menuBar().actions():
            menu = top.menu()
            if isinstance(menu, QMenu):
                menu_actions.extend(self._walk(menu))
        ShortcutsDialog(menu_actions, self).exec()

    def _walk(self, menu: QMenu) -> list[QAction]:
        out: list[QAction] = []
        for a in menu.actions():
            sub = a.menu()
            if isinstance(sub, QMenu):
                out.extend(self._walk(sub))
            elif not a.isSeparator():
                out.append(a)
        return out

    def _about(self) -> None:
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"<b>{APP_NAME}</b><p>Continuous zoom for old photos with LIIF (Chen, Liu and Wang, "
            "<i>Learning Continuous Image Representation with Local Implicit Image Function</i>, CVPR 2021)."
            "<p>Above 100% magnification the view is refined by the model, tile by tile, centre first; below "
            "it, the photo is shown downscaled.",
        )
