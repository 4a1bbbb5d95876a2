/* digitnet export --format onnx and digitnet import: the command-line side of src/onnx/. */
#include "cli.h"
#include "onnx/dn_onnx.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct onnx_options {
    const char *model, *format, *out, *input;
    double input_scale; /* import --input-scale; 0: from the model or the input size */
    int json, quiet;
    int int8, calibration;       /* export --int8 [--calibration N]: the quantised network */
    const char *data, *data_dir; /* export --int8: the calibration data (default: the model's) */
} onnx_options;

/* Options of export and import; "--format" only for export, "--input-scale" and one FILE only for import. */
static int parse_onnx_options(int argc, char **argv, int importing, onnx_options *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (!importing && !strcmp(a, "--int8")) {
            o->int8 = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (!importing || o->input)
                return cli_failf("unexpected argument '%s' (see digitnet --help)", a), -1;
            o->input = a;
            continue;
        }
        if (i + 1 >= argc)
            return cli_failf("%s needs a value", a), -1;
        const char *v = argv[++i];
        if (!strcmp(a, "--out"))
            o->out = v;
        else if (!importing && !strcmp(a, "--model"))
            o->model = v;
        else if (!importing && !strcmp(a, "--format"))
            o->format = v;
        else if (!importing && !strcmp(a, "--data"))
            o->data = v;
        else if (!importing && !strcmp(a, "--data-dir"))
            o->data_dir = v;
        else if (!importing && !strcmp(a, "--calibration")) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || end == v || *end || n < 1 || n > 10000000)
                return cli_failf("--calibration: '%s' is not a number in [1, 10000000]", v), -1;
            o->calibration = (int)n;
        } else if (importing && !strcmp(a, "--input-scale")) {
            char *end;
            errno = 0;
            o->input_scale = strtod(v, &end);
            if (errno || end == v || *end || !(o->input_scale > 0 && o->input_scale < 1e9))
                return cli_failf("--input-scale: '%s' is not a positive number", v), -1;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "--seed"))
            continue; /* accepted as by every command; nothing here depends on them */
        else
            return cli_failf("unknown option %s for %s (see digitnet --help)", a, importing ? "import" : "export"), -1;
    }
    return 0;
}

/* export --format onnx --int8: quantised as eval --int8 quantises (tools/cmd_export.c), then written. */
static int export_onnx_int8(const onnx_options *o, const dn_net *net)
{
    cli_options *co = calloc(1, sizeof *co);
    if (!co)
        return cli_failf("out of memory");
    co->command = "export";
    co->model = o->model;
    co->data = o->data;
    co->data_dir = o->data_dir;
    co->calibration = o->calibration;
    dn_error err = {0};
    cli_data data;
    dn_qnet *q = NULL;
    int status = 0;
    if (cli_quantize(co, net, &data, &q, &err) != DN_OK) {
        free(co);
        return cli_fail(&err);
    }
    int n_cal = o->calibration ? o->calibration : DN_QUANT_DEFAULT_CALIBRATION;
    n_cal = n_cal < data.train.n ? n_cal : data.train.n;
    dn_metrics m;
    if (dn_qnet_evaluate(q, &data.test, &m, NULL, &err) != DN_OK ||
        dn_onnx_export_int8(net, q, n_cal, o->out, &err) != DN_OK)
        status = cli_fail(&err);
    else if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", o->out);
        cJSON_AddStringToObject(j, "format", "onnx");
        cJSON_AddStringToObject(j, "arithmetic", "int8");
        cJSON_AddNumberToObject(j, "ir_version", DN_ONNX_IR_VERSION);
        cJSON_AddNumberToObject(j, "opset", DN_ONNX_OPSET);
        cJSON_AddNumberToObject(j, "raw_max", dn_net_raw_max(net));
        cJSON_AddNumberToObject(j, "calibration_rows", n_cal);
        cJSON_AddNumberToObject(j, "int8_accuracy", m.accuracy);
        cli_print_json(j);
    } else if (!o->quiet) {
        dn_shape in = dn_net_input_shape(net);
        printf("Wrote %s: ONNX IR %d, opset %d, int8 (QLinearConv, calibrated on %d training rows); input (N, %d, %d, "
               "%d) float32 raw pixels 0..%d, output probabilities (N, %d)\n",
               o->out, DN_ONNX_IR_VERSION, DN_ONNX_OPSET, n_cal, in.h, in.w, in.c, dn_net_raw_max(net),
               dn_net_n_classes(net));
        printf("  int8 accuracy %.4f on %s (digitnet's own int8 arithmetic)\n", m.accuracy, data.test_desc);
    }
    dn_qnet_free(q);
    cli_data_free(&data);
    free(co);
    return status;
}

int cmd_export_onnx(int argc, char **argv)
{
    onnx_options o = {0};
    if (parse_onnx_options(argc, argv, 0, &o))
        return EXIT_USAGE;
    if (!o.format || strcmp(o.format, "onnx"))
        return cli_failf("export: --format onnx is required (got %s)", o.format ? o.format : "none"), EXIT_USAGE;
    if (!o.model || !o.out)
        return cli_failf("export: --model M and --out FILE.onnx are required"), EXIT_USAGE;
    if (!o.int8 && (o.data || o.data_dir || o.calibration))
        return cli_failf("export --format onnx: --data, --data-dir and --calibration go with --int8"), EXIT_USAGE;
    dn_error err = {0};
    dn_net *net = NULL;
    int saved = 0;
    if (cli_open_model(o.model, 1, &net, &saved, &err) != DN_OK)
        return cli_fail(&err);
    if (!saved) {
        dn_net_free(net);
        return cli_failf("%s: a spec, not a trained model; train it with --out first", o.model);
    }
    if (o.int8) {
        int status = export_onnx_int8(&o, net);
        dn_net_free(net);
        return status;
    }
    int status = 0;
    if (dn_onnx_export(net, o.out, &err) != DN_OK)
        status = cli_fail(&err);
    else {
        dn_shape in = dn_net_input_shape(net);
        char params[32];
        cli_thousands(dn_net_param_count(net), params);
        if (o.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "out", o.out);
            cJSON_AddStringToObject(j, "format", "onnx");
            cJSON_AddNumberToObject(j, "ir_version", DN_ONNX_IR_VERSION);
            cJSON_AddNumberToObject(j, "opset", DN_ONNX_OPSET);
            cJSON_AddNumberToObject(j, "raw_max", dn_net_raw_max(net));
            cJSON_AddNumberToObject(j, "params", (double)dn_net_param_count(net));
            if (dn_net_ensemble_size(net) > 1)
                cJSON_AddNumberToObject(j, "ensemble", dn_net_ensemble_size(net));
            cli_print_json(j);
        } else if (!o.quiet) {
            printf("Wrote %s: ONNX IR %d, opset %d; input (N, %d, %d, %d) float32 raw pixels 0..%d, output "
                   "probabilities (N, %d); %s parameters",
                   o.out, DN_ONNX_IR_VERSION, DN_ONNX_OPSET, in.h, in.w, in.c, dn_net_raw_max(net), dn_net_n_classes(net),
                   params);
            if (dn_net_ensemble_size(net) > 1)
                printf(" per member; an ensemble of %d, their probabilities averaged by a Mean node",
                       dn_net_ensemble_size(net));
            putchar('\n');
        }
    }
    dn_net_free(net);
    return status;
}

int cmd_import(int argc, char **argv)
{
    onnx_options o = {0};
    if (parse_onnx_options(argc, argv, 1, &o))
        return EXIT_USAGE;
    if (!o.input || !o.out)
        return cli_failf("import: FILE.onnx and --out M.safetensors are required"), EXIT_USAGE;
    dn_error err = {0};
    dn_net *net = NULL;
    dn_onnx_import_info info;
    if (dn_onnx_import(o.input, (float)o.input_scale, &net, &info, &err) != DN_OK)
        return cli_fail(&err);
    int status = 0;
    if (dn_net_set_note(net, "imported_from", o.input, &err) != DN_OK || dn_model_save(net, o.out, &err) != DN_OK)
        status = cli_fail(&err);
    else if (o.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", o.out);
        cJSON_AddStringToObject(j, "layout", info.layout);
        cJSON_AddNumberToObject(j, "nodes", info.n_nodes);
        cJSON_AddNumberToObject(j, "input_scale", info.input_scale);
        cJSON_AddBoolToObject(j, "softmax_added", info.softmax_added);
        cJSON_AddStringToObject(j, "spec", dn_net_spec(net));
        cli_print_json(j);
    } else if (!o.quiet) {
        printf("Imported %s: %d nodes, %s layout, input taken as raw pixels / %g%s\n", o.input, info.n_nodes, info.layout,
               (double)info.input_scale, info.softmax_added ? "; the graph ended in logits, softmax added" : "");
        cli_print_summary(stdout, net, o.input);
        printf("Wrote %s\n", o.out);
    }
    dn_net_free(net);
    return status;
}
