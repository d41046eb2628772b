"""The help of each `mask-train` sub-command (training.cli): its one-line summary and its description."""

#: Sub-command -> (one-line help, description).
TEXTS: dict[str, tuple[str, str]] = {
    'export-detector': (
        "export facenet-pytorch's MTCNN (P/R/O-Net) to ONNX",
        'Export the pretrained MTCNN networks shipped in facenet-pytorch to ONNX, check them against torch, and write\n'
        'ORIGIN.md next to them. By default into cache/detectors/stock, the pinned reference detector of eval-detector,\n'
        'finetune-detector and synth; the shipped assets/models/mtcnn is replaced only when named with --out.'
    ),
    'prepare': (
        'detect faces in labelled photos and cache their crops',
        "Read datasets, find each photo's face with core's MTCNN, save core's crop to the cache\n"
        'with manifest.csv and problems.csv. Resumable: a rerun skips photos already done.\n'
        '\n'
        'Dataset layouts (--data KIND=PATH, or PATH alone when recognisable):\n'
        '  competition=DIR  DIR/train.csv (id,gender,race,age,path) + DIR/images/<path>/{mask1..5,incorrect_mask,normal}.*\n'
        '  utkface=DIR      <age>_<gender>_<race>_<date>.jpg names (gender 0 male, 1 female)\n'
        '  folders=DIR      DIR/<class>/*.jpg, class folder -> mask label (see --class-map)\n'
        '  csv=FILE         columns path[,person_id,mask,gender,age,source,x1,y1,x2,y2]; empty cell = unknown;\n'
        "                   x1..y2 = the face's known box in pixels (all four or none; `synth` writes them)\n"
        '  boxes=FILE       labelled face boxes in scene photos (face_mask_853 boxes.csv): path,img_w,img_h,label,\n'
        "                   xmin,ymin,xmax,ymax, one row per box, label through --class-map; person = the photo's\n"
        '                   group in near_duplicate_groups.csv (group,path) beside FILE when present, else the photo\n'
        '\n'
        'Rows with a known box are not detected: each box is cropped as a detected face would be\n'
        '(boxes with a side under --min-box px are skipped and counted).'
    ),
    'eda': (
        'an HTML report on the training data: labels, ages, people, sizes, detection, samples',
        "Read the datasets as prepare does (--data KIND=PATH; see `prepare --help`) or a prepared cache's\n"
        'manifest (--cache alone), and write OUT/report.html (plots inlined: one file) and OUT/eda.json:\n'
        'class counts per head and for the 18 classes, the age histogram with the group boundaries,\n'
        'gender x age, photos per person, photo sizes, the face-detection outcome per source (with\n'
        '--cache) and a grid of sample photos per class (the cached face crops with --cache).'
    ),
    'split': (
        'person-level stratified k-fold into <cache>/folds.csv',
        "Assign every person of the cache to one fold, stratified on the person's mask states,\n"
        'gender and age group. Every later run reads the same folds.csv. --holdout F first sets a\n'
        'stratified fraction F of the people aside as the test split (fold "test"), which train never\n'
        'uses and `evaluate --split test` scores. People sharing an exact duplicate photo (same bytes)\n'
        'are kept together.'
    ),
    'train': (
        'train a classifier on the cache',
        'Train a timm trunk with mask/gender/age heads (or one 18-way head) on the cached crops,\n'
        'validating on --fold. Checkpoints every epoch; --resume continues an interrupted run.'
    ),
    'tune': (
        'hyper-parameter search with Ray Tune (ASHA + Optuna) on one fold',
        "Each trial trains --fold for up to --max-epochs with the settings of the --config file's [train]\n"
        'table, overridden by values the Optuna search draws from [tune.space]; ASHA stops the weak\n'
        'trials early. Writes OUT/results.csv (one row per trial, best first) and OUT/best.toml, a\n'
        '[train] table for `mask-train train --config OUT/best.toml`. Search space (TOML):\n'
        '  [tune.space]\n'
        '  lr = { loguniform = [1e-4, 3e-3] }       # also uniform, randint, quniform = [a, b, q]\n'
        '  model = { choice = ["mobilenetv3_large_100", "efficientnet_b0"] }\n'
        '  augment = { uniform = [0.5, 1.5] }        # scales jitter, scale, shift and cut-out together\n'
        '  cache = { choice = ["cache128", "cache224"] }  # input size: one prepared cache per size\n'
        'Any train setting can be a key; a plain value fixes it. Without [tune.space]: lr, weight decay,\n'
        'label smoothing, focal gamma, batch size and augmentation strength.'
    ),
    'evaluate': (
        'score a run on its validation fold or the test split',
        'Per-head macro-F1 and accuracy (overall and per source; the mask head by gender and age\n'
        'group), 18-class macro-F1, confusion matrices (PNG), errors by age, breakdown.csv and\n'
        "report.md, fairness by race group and gender (fairness.csv), and with --out-of-source the\n"
        "faces of training/labels/out_of_source.csv (out_of_source.md), for the run's best checkpoint\n"
        "or (--onnx) an exported model through core. --checked-masks also scores the mask head on the\n"
        "real photos against mask states checked by eye (training/labels/mask_val_by_eye.csv, and\n"
        "mask_test_by_eye.csv with --split test): some dataset labels are plainly wrong."
    ),
    'teach': (
        'label real faces without gender / age with the CC0 dlib networks (a teacher)',
        "Run dlib-models' gender and age networks (Cydral, CC0; `make dlib-models` fetches them) on the\n"
        "cache's real faces that have no gender or age (face_mask_853, mask_web), aligned on MTCNN's\n"
        'landmarks, and write <cache>/teacher.csv with the labels it is sure of (--gender-confidence,\n'
        '--age-confidence). `train --teacher` fills the missing targets of its training photos from it.\n'
        "Photos of the out-of-source faces (and their person ids) are never labelled; the teacher is\n"
        'scored on those faces at the same confidences instead: <cache>/teacher_check.md.'
    ),
    'export': (
        "export a run's best checkpoint to the ONNX file the app loads",
        'Write the classifier with its metadata (heads, input size, mean/std, crop margin, version,\n'
        'training data, architecture, age boundary) after checking onnxruntime against torch on\n'
        'real crops from the cache; a failing model is not written.\n'
        '\n'
        "--ensemble RUN_DIR... (folders or glob patterns, e.g. 'cache/runs/m_fold*') writes ONE graph that\n"
        "averages the runs' probabilities (with --tta, also over the mirrored crop); the app loads it like\n"
        'any model, and its metadata lists the members. --member-heads RUN_DIR=mask lets that member\n'
        "feed only the mask head's average (the others: every head), e.g. a network that finds wrongly\n"
        'worn masks beside one that tells gender better. Runs trained on caches cut at different sizes\n'
        '(prepare --input-size 112 and 160) can share one file: it takes the largest crop and shrinks it,\n'
        'in the graph, for the members trained on smaller ones.\n'
        '\n'
        "--age-prior TAU (0..1) corrects the age head of runs trained with class weights, which answer\n"
        "as if every age group were equally common, towards the training photos' frequencies; the file\n"
        'records the prior and TAU. `calibrate` chooses TAU.'
    ),
    'calibrate': (
        'choose the age prior correction (export --age-prior) of an exported file',
        'Run the file (exported with --age-prior 0) on the validation fold and the out-of-source faces\n'
        'once, score each TAU from 0 to 1 by the mean of the two age macro-F1s, and write a report of\n'
        'every TAU (in and out of source, bare vs masked) with the one to export with. The test split is\n'
        'never read.'
    ),
    'soup': (
        'average runs of one recipe weight by weight into one network (a model soup)',
        'For runs that started from the same weights (same trunk, same seed; e.g. the same recipe trained\n'
        "for different lengths): the mean of their best checkpoints' weights, with BatchNorm's statistics\n"
        "measured again on the first run's training crops, written as a run folder (--out) that export,\n"
        "evaluate and export --ensemble take like any run: several runs in one network's time per face."
    ),
    'recover': (
        'write the networks inside an exported classifier back as run folders',
        "Read each network of an ONNX file that `mask-train export` wrote (one network, or every member of\n"
        'an ensemble) back into a run folder with checkpoints/best.pt, so that export --ensemble can add new\n'
        'runs to the shipped ones and evaluate (or export and calibrate) can look at each network, without\n'
        'the original checkpoints. The run folders take the --config recipe\'s [train] settings (cache, age\n'
        "boundary); the file's TTA and age prior correction are not part of them. BatchNorm was folded into\n"
        'the convolutions by the export, so a recovered network is for evaluation and ensembles, not for\n'
        'training further or soup. Checked against the file before anything is written. A file whose\n'
        'members were trained at different crop sizes needs a cache cut at each: --member-caches DIR names\n'
        'the others, and each run folder names the cache cut at its size.'
    ),
    'predict': (
        'classify a folder through core with an exported model',
        "Run core's batch path (FaceAnalyzer + BatchJob, as `mask-checker batch`) over DIR and\n"
        'write one CSV row per face.'
    ),
    'synth': (
        'render masks (correct, wrong, none) on unmasked faces',
        "Draw masks on UTKFace-style face chips from MTCNN's landmarks: correct (nose bridge to chin),\n"
        'incorrect (nose out or chin out) or none. Writes DIR/images/*.jpg and DIR/manifest.csv\n'
        "(path, person_id, mask, gender, age, source, style, placement, x1..y2 = the bare face's box);\n"
        '`prepare --data csv=DIR/manifest.csv` reads it. Same --seed, same bytes. Resumable.'
    ),
    'eval-detector': (
        "score face detectors against face_mask_853's labelled boxes",
        "Run core's MTCNN (onnxruntime, as the app does) over face_mask_853's photos for each detector\n"
        'folder × --min-face × --thresholds, side by side. A labelled face is found when a detection\n'
        'overlaps it at IoU >= 0.4 (one-to-one, greedy). Recall per mask state and per box-width band\n'
        '(the >= 40 px columns are the shipping criterion), and detections matching no labelled face.\n'
        '--split heldout (default) scores only the part a detector fine-tune never sees (chosen by a\n'
        'stable hash of the near-duplicate group). --min-face-fraction F scores the batch path\'s per-photo\n'
        'search (small photos also searched down to F x the short side). --closeup adds held-out mask_web\n'
        'photos letterboxed into 640x480: close-up faces found per mask state, and stray boxes.\n'
        'Writes OUT.md and OUT.csv.'
    ),
    'finetune-detector': (
        'fine-tune MTCNN (P/R/O-Net) on masked faces and export it',
        "Start from facenet-pytorch's MTCNN weights and train on crops labelled by IoU (positive >= 0.65,\n"
        'part 0.4-0.65, negative < 0.3) from synthetic masks on UTKFace (`mask-train synth` output, with\n'
        "landmarks), face_mask_853's training part (real boxes of every mask state; stock proposals\n"
        'over no face as hard negatives; its bare faces dressed in synthetic masks, caps, hoods, glasses\n'
        "where they stand) and mask_web's training part letterboxed into 640x480 (without_mask dressed,\n"
        'with_mask pseudo-labelled by stock at 0.4/0.5/0.5). Then --mine-epochs more epochs with the first\n'
        "round's own false positives as negatives; scores on bare-face crops are held to stock's (--distill).\n"
        'Crops are cached part by part and checkpoints written in --run-dir (--resume continues); the\n'
        'result is exported like export-detector, with ORIGIN.md.\n'
        'Score it with `mask-train eval-detector --detector RUN/mtcnn`.'
    ),
}
